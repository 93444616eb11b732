"""Typed settings for a run, read from and written to YAML.

One `RunConfig` says everything needed to repeat a run: where the data is, how it is decoded and turned into
features, which model, and how it is trained. Defaults per modality live in `seehear.recipes`, not here.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from seehear.errors import ConfigError


@dataclass
class DataConfig:
    label_pattern: Optional[str] = None  # regex with (?P<label>...) and optional (?P<speaker>...) etc., on file names
    split_by: Optional[str] = None  # a group column (speaker, say): no group in two splits
    split_column: Optional[str] = None  # take the split from this column (values train/valid/test)
    test_files: Optional[str] = None  # a text file listing the paths (one per line) that form the test split
    valid_fraction: float = 0.1  # of the examples that train (the part a split column or test list leaves)
    valid_max: Optional[int] = None  # at most this many validation examples (enough to watch training; rest trains)
    test_fraction: float = 0.2
    max_image_pixels: int = 50_000_000  # larger images are refused as likely decompression bombs
    workers: int = 0  # decode threads; 0 = number of cores
    unlabelled: Optional[str] = None  # a folder of unlabelled files for semi-supervised training (`--unlabelled`)


@dataclass
class AudioConfig:
    sample_rate: int = 16000
    clip_seconds: float = 1.0  # every clip is cropped or padded to this length
    crop: Literal["center", "start", "energy"] = "center"  # energy: the loudest window
    features: Literal["logmel", "mfcc"] = "logmel"
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 40
    n_mfcc: int = 40
    f_min: float = 20.0
    f_max: Optional[float] = None
    normalize: Literal["utterance", "global", "none"] = "utterance"  # utterance: per clip and band (unseen voices)


@dataclass
class ImageConfig:
    size: int = 32  # images are resized to size x size
    channels: int = 3  # 1 = grayscale, 3 = RGB
    resize: Literal["stretch", "pad", "crop"] = "stretch"  # pad/crop keep the aspect (pad, or centre crop)
    tta: Literal["none", "flip", "flip-translate"] = "none"  # flip: 2x the inference compute; flip-translate 6x


@dataclass
class FramesConfig:
    """Image sequences (modality frames): a folder of frame images or an animated GIF/WebP per example."""
    count: int = 8  # frames per example: longer sequences are sampled evenly, shorter ones repeat their last frame


@dataclass
class AugmentConfig:
    # images, applied on whole batches
    flip: bool = True
    alternate_flip: bool = False  # flip each image on alternate epochs instead of at random (airbench)
    crop_pad: int = 2  # random translate by up to this many pixels (reflect padding)
    cutout: int = 0  # blank a random square of this many pixels per image (0 = off); regularises long runs
    # per-sample random image policies on whole uint8 batches (features/policies.py)
    policy: Literal["none", "randaugment", "trivialaugment", "augmix"] = "none"
    policy_ops: int = 2  # randaugment: ops per image (N)
    policy_magnitude: int = 9  # randaugment: magnitude M of 30 bins; augmix: severity up to this (of 30)
    resized_crop: Optional[list[float]] = None  # [lo, hi] area share kept by a random resized crop; None = off
    color_jitter: float = 0.0  # brightness/contrast/saturation by up to +-this, hue by +-this/4 turns; 0 = off
    grayscale: float = 0.0  # share of images made grey (SimCLR's views: 0.2), after the colour jitter
    # audio waveform, on whole batches
    time_shift: float = 0.1  # seconds, roll by up to this much
    noise_snr_db: Optional[list[float]] = field(default_factory=lambda: [10.0, 40.0])  # None = off
    noise_prob: float = 0.5
    speed: Optional[list[float]] = field(default_factory=lambda: [0.85, 1.15])  # tempo+pitch by resampling; None=off
    gain_db: float = 6.0
    # spectrogram (SpecAugment)
    freq_masks: int = 2
    freq_width: int = 6
    time_masks: int = 2
    time_width: int = 10
    # audio, more (features/audio_augment.py); all off by default
    noise_dir: Optional[str] = None  # folder of recordings mixed in as background noise at noise_snr_db
    babble_prob: float = 0.0  # share of clips mixed with babble (a few other training clips summed)
    babble_snr_db: list[float] = field(default_factory=lambda: [5.0, 20.0])
    reverb_prob: float = 0.0  # share of clips convolved with a generated room impulse response
    reverb_rt60: list[float] = field(default_factory=lambda: [0.2, 0.8])  # seconds, decay time of the RIR
    pitch_semitones: float = 0.0  # pitch shift by up to +-this many semitones, tempo kept; 0 = off
    pitch_prob: float = 0.5
    bandlimit_prob: float = 0.0  # share of clips low-passed (telephone-like), cutoff drawn in bandlimit_hz
    bandlimit_hz: list[float] = field(default_factory=lambda: [1000.0, 4000.0])
    vtlp: Optional[list[float]] = None  # [lo, hi]: warp each clip's mel filterbank (VTLP), e.g. [0.9, 1.1]; None=off
    mixup: float = 0.0  # alpha; 0 = off
    cutmix: float = 0.0  # alpha; 0 = off (with mixup too, each batch gets one of the two at random)


@dataclass
class ModelConfig:
    name: str = "auto"  # a registered model, or auto = the recipe's choice for the modality and input size
    pretrained: Optional[str] = None  # local weights file (safetensors or .pth) for the backbone; never downloaded
    init_from: Optional[str] = None  # a seehear run folder whose backbone starts this one (`train --from RUN`)
    # auto: a recipe's default start ($SEEHEAR_HOME/start/RECIPE, `seehear start set`) when one is set and fits and
    # the run names no start or model of its own; scratch: never the default (--from / pretrained still apply)
    start: Literal["auto", "scratch"] = "auto"
    kwargs: dict = field(default_factory=dict)  # passed to the model's factory (width, depth, dropout, ...)
    # transcription models only:
    subsample: Optional[Literal[2, 4, 8]] = None  # input frames per output frame before the encoder; None = 4
    blank_bias: Optional[float] = None  # initial bias of the CTC blank logit in the output layer; None = as built


@dataclass
class TrainConfig:
    epochs: int = 30
    time_budget: Optional[float] = None  # seconds; training stops when it is spent (epochs is then an upper bound)
    batch_size: int = 64  # capped at 1/8 of the training set (at least 8), so small data gets several steps
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop", "muon"] = "adamw"  # muon: conv filters; SGD for the rest
    lr: float = 3e-3
    muon_lr: float = 0.24  # optimizer muon: the filters' step (an angle: their norm is held fixed)
    muon_momentum: float = 0.6
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    norm_lr_scale: float = 1.0  # learning rate multiplier for norm layers (airbench: 64 for its BatchNorm shifts)
    decay_norms: bool = False  # weight decay on norms and biases too, as much per step as on the weights (airbench)
    schedule: Literal["onecycle", "linear", "cosine", "constant"] = "onecycle"  # linear: from the peak down to 0
    warmup_epochs: float = 1.0  # for cosine and constant
    warmup_fraction: Optional[float] = None  # linear warm-up over this share of training (any schedule); None =
    # the schedule's own (onecycle: 0.25; cosine/constant: warmup_epochs; linear: none)
    label_smoothing: float = 0.1
    ema: Optional[float] = None  # decay of an exponential moving average of weights, e.g. 0.999; None = off
    lookahead: bool = False  # airbench-style lookahead averaging every 5 steps (engine/lookahead.py)
    grad_clip: Optional[float] = 5.0
    early_stopping: Optional[int] = None  # patience in epochs on validation accuracy; None = off
    class_weights: bool = False  # weight the loss by class frequency (class_weight_kind)
    class_weight_kind: Literal["inverse", "effective"] = "inverse"  # effective: by effective number (Cui 2019)
    effective_beta: float = 0.999  # class_weight_kind=effective: (1 - beta) / (1 - beta^n)
    drw: Optional[float] = None  # deferred re-weighting: class weights only from this fraction of training on
    # balanced: classes drawn evenly; sqrt: ~ sqrt(count); group_balanced: the groups of train.group_by drawn evenly
    # (fairness across speakers, genders ...); group_class_balanced: every (group, class) pair drawn evenly
    sampler: Literal["none", "balanced", "sqrt", "group_balanced", "group_class_balanced"] = "none"
    group_by: Optional[str] = None  # group_* samplers: a manifest column, a Kaldi spk2* fact (gender, age); None=group
    loss: Literal["ce", "focal", "logit_adjusted"] = "ce"  # logit_adjusted: Menon et al. 2021
    focal_gamma: float = 2.0
    logit_tau: float = 1.0  # logit_adjusted: the prior's power
    posthoc_tau: float = 0.0  # subtract tau * log(prior) from the trained model's logits (post-hoc adjustment)
    # fgsm: train on FGSM-with-random-start batches (Wong et al.); nfgsm: N-FGSM (de Jorge et al. 2022), the same
    # cost without FGSM-RS's catastrophic overfitting at large ε
    adversarial: Literal["none", "fgsm", "nfgsm"] = "none"
    adversarial_eps: float = 8.0  # images: the L-inf bound in pixel levels of 255
    adversarial_snr_db: float = 30.0  # audio: the perturbation is at least this far below each clip
    precision: Literal["auto", "bf16", "32", "fp32", "16"] = "auto"  # auto: bf16 where the hardware has it natively
    seed: int = 0
    deterministic: bool = False
    threads: int = 0  # torch threads; 0 = number of cores
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    devices: int = 1  # data parallel: processes (CPU) or GPUs, each training on its own shard of every epoch
    strategy: Literal["auto", "ddp"] = "auto"  # ddp: DistributedDataParallel (gloo on CPU, NCCL on GPUs)
    checkpoint_every: int = 1  # epochs between resumable checkpoints
    freeze_epochs: int = 0  # with model.init_from/pretrained: train only the head for this many epochs first
    fixmatch_threshold: float = 0.95  # with data.unlabelled: pseudo-labels only where the weak view is this sure
    unlabelled_weight: float = 1.0  # with data.unlabelled: weight of the pseudo-label loss (FixMatch's lambda_u)
    backbone_lr_scale: float = 1.0  # learning-rate multiplier for everything but the head (transfer: e.g. 0.1)
    # episodic (prototypical-network) training of the embedding, engine/episodic.py; each step is one episode of
    # episode_ways classes x (episode_shots support + episode_queries query) examples from the training split
    episodic: bool = False
    episode_ways: int = 5
    episode_shots: int = 5
    episode_queries: int = 5
    episode_metric: Literal["euclidean", "cosine"] = "euclidean"  # euclidean: squared distance (Snell et al. 2017)
    episode_head_weight: float = 1.0  # the classifier head learns beside it (cross-entropy x this), for predict
    # transcription (CTC) only:
    inter_ctc_weight: float = 0.0  # intermediate CTC (Lee & Watanabe 2021) from the middle block; Conformer/Transformer
    sortagrad: bool = False  # the first epoch's batches shortest first (Amodei et al. 2016), shuffled after
    # fixed: the length-sorted rows are cut into batches once, and only the batches' order is shuffled each epoch;
    # redrawn: each epoch draws its rows anew, with replacement (uniformly, or by train.sampler=group_balanced's
    # weights, which always redraw), and cuts as many length-sorted batches from them (engine/ctc.LengthBatches)
    batches: Literal["fixed", "redrawn"] = "fixed"


@dataclass
class TranscribeConfig:
    """Speech to text (task: transcribe): CTC output units and decoding."""
    units: Literal["char", "sentencepiece"] = "char"  # sentencepiece: subwords learned from the transcripts
    vocab_size: int = 128  # sentencepiece vocabulary size
    max_seconds: float = 16.0  # training utterances are cut to this; longer inputs are split by voice activity
    decoder: Literal["greedy", "beam"] = "beam"  # beam: with a word n-gram from the training text, if any
    beam_size: int = 32
    lm_order: int = 3  # word n-gram order of the language model built from text
    lm_text: Optional[str] = None  # extra text file (one sentence per line) for the language model
    lm_weight: float = 0.5
    word_score: float = 0.0
    tune_decoding: bool = True  # choose lm_weight and word_score on the validation split after training
    hotwords: list[str] = field(default_factory=list)  # words beam search favours (names, jargon); added to its lexicon
    hotword_boost: float = 5.0  # log-score added to each hotword the beam search completes (CLI: --hotword WORD)
    fairness_by: Optional[str] = None  # WER per group of this column (gender, age, a manifest column) with speaker-
    # bootstrap intervals in metrics.json; None = train.group_by's column when the run balances by one, else none


@dataclass
class SpeakerConfig:
    """Speaker embeddings (task: speakers): trained as speaker classification with an additive-angular margin."""
    embed_dim: int = 192
    margin: float = 0.2  # AAM-softmax margin m
    scale: float = 30.0  # AAM-softmax scale s
    segment_seconds: float = 3.0  # training crops; enrolment and trials use whole utterances
    threshold: Optional[float] = None  # cosine threshold for verify; None = the EER threshold found at training
    # a column (gender, age from spk2*, a manifest column) whose groups each get an EER with a speaker-bootstrap
    # interval in metrics.json (per_group_eer); None = train.group_by where set
    fairness_by: Optional[str] = None


@dataclass
class PretrainConfig:
    """Self-supervised pretraining (task: pretrain). Images: SimCLR (engine/simclr.py), BYOL and DINO
    (engine/ema_ssl.py). Audio: BEST-RQ targets and masking (engine/bestrq.py)."""
    method: Literal["auto", "simclr", "byol", "dino", "masked", "contrastive"] = "auto"  # auto: simclr (images),
    # masked (audio); byol and dino are for images only
    codebook_size: int = 512  # frozen random codebook entries (the targets' classes; chance = 1 / this)
    codebook_dim: int = 16
    mask_prob: float = 0.4  # share of each recording's frames masked
    mask_frames: int = 8  # length of a masked span in feature frames (rounded to whole encoder frames)
    noise_std: float = 0.1  # masked frames become N(0, noise_std) noise (features are normalised)
    temperature: float = 0.1  # contrastive: InfoNCE temperature
    # byol, dino: the teacher is an exponential moving average of the student; its momentum rises from this to 1
    # by a cosine over training (BYOL 0.996 and DINO 0.996 over hundreds of epochs; short CPU runs need it to move)
    ema_momentum: float = 0.99
    predictor_hidden: int = 256  # byol: hidden width of the online network's predictor MLP
    prototypes: int = 256  # dino: K, the head's output classes (DINO: 65536 on ImageNet; 256 fits a CPU run)
    teacher_temperature: float = 0.04  # dino: sharpens the teacher's softmax (below student_temperature)
    student_temperature: float = 0.1
    center_momentum: float = 0.9  # dino: running centre of the teacher's outputs, subtracted against collapse
    # simclr: the loss sees the backbone's last Linear through BatchNorm, ReLU and one more Linear (mlp, SimCLR's
    # nonlinear head, kept in the checkpoint, not the run's model) or directly (linear)
    projector: Literal["mlp", "linear"] = "mlp"


@dataclass
class SyntheticConfig:
    """Classification: minority classes topped up with a GAN run's images (`train --synthetic RUN`,
    engine/synthetic.py). Class c gets max(0, ceil(ratio * largest class count) - count_c) generated images, made
    once at the start from the GAN's averaged generator, in the training split only: ratio 1 balances the classes,
    0.5 lifts every class to half the largest, above 1 adds to every class."""
    run: Optional[str] = None  # a `seehear synthesize` run folder; None = off
    ratio: float = 1.0  # 0..10

    def __post_init__(self):
        if not 0.0 <= float(self.ratio) <= 10.0:
            raise ConfigError(f"setting synthetic.ratio must be between 0 and 10 (1 = balance the classes), "
                              f"got {self.ratio}")


@dataclass
class FusionConfig:
    """Audio-image pairs (modality audio-image, models/fusion.py): an image and an audio branch, fused."""
    mode: Literal["early", "late", "attention"] = "attention"  # early: concat -> MLP; late: mean of the branches'
    # logits (learned weights); attention: the two embeddings as tokens, a learned query weighs them per example
    modality_dropout: float = 0.3  # training: share of examples with one modality (either, at random) marked absent
    degrade_prob: float = 0.2  # training: share of examples with one input (either) present but swamped in noise
    # (pixel noise sigma 32-255, or white noise at -10..10 dB SNR): a present input is not always a good one, so the
    # fusion learns to lean on the other when one is ruined (without it, noisy images dragged fused accuracy below
    # the audio's alone: bench/av_digits.py)
    unimodal_weight: float = 0.5  # training: + this x the loss of each input alone through the same head (the
    # branch that learns slower still learns: without it the faster modality can carry the fused loss alone)
    image_model: str = "small_cnn"  # a registered image backbone
    audio_model: str = "tcresnet8"  # a registered audio backbone, on the log-mel/MFCC front end
    embed_dim: int = 64  # each branch's embedding (its backbone's output width)
    hidden: int = 128  # early: the MLP head's hidden width


# Sections every run's config.yaml has held; sections added since (pretrain, synthetic, ...) take their defaults when
# an older run is resumed, so a new section never makes an existing run look damaged.
REQUIRED_SECTIONS = {"task", "modality", "data", "audio", "image", "augment", "model", "train", "transcribe",
                     "speakers"}
# Settings whose default changed after runs had already saved config.yaml without them: such a file means the old
# behaviour, so a resumed run continues the model its checkpoint holds (SimCLR's nonlinear head came later).
PREDATED = {("pretrain", "projector"): "linear"}


@dataclass
class RunConfig:
    task: Literal["classify", "transcribe", "speakers", "synthesize", "pretrain"] = "classify"  # synthesize: a GAN
    # frames: image sequences (data/frames.py); audio-image: a manifest of pairs (data/pairs.py)
    modality: Literal["auto", "image", "audio", "frames", "audio-image"] = "auto"
    data: DataConfig = field(default_factory=DataConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    frames: FramesConfig = field(default_factory=FramesConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    transcribe: TranscribeConfig = field(default_factory=TranscribeConfig)
    speakers: SpeakerConfig = field(default_factory=SpeakerConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)

    # --- (de)serialisation -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "RunConfig":
        return _build(cls, d or {}, "")

    def to_yaml(self, path: str | Path) -> None:
        from seehear.atomic import write_text

        write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path, *, complete: bool = False) -> "RunConfig":
        """Settings from a YAML file. complete=True: a run's own config.yaml, which must hold every section (an
        empty or cut-off file must never come back as defaults, e.g. on --resume)."""
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            d = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
        except PermissionError:
            raise ConfigError(f"{p} cannot be read (permission denied)") from None
        d = {} if d is None and not complete else d
        if complete and not (isinstance(d, dict) and REQUIRED_SECTIONS <= set(d)):
            raise ConfigError(f"{p} is incomplete or damaged (a run's config.yaml holds every setting); restore it "
                              f"from meta.json's config, or start the run again")
        if not isinstance(d, dict):
            raise ConfigError(f"{p} must hold a mapping of settings (data:, train:, ...)")
        if complete:
            for (section, key), old in PREDATED.items():
                if isinstance(d.get(section), dict) and key not in d[section]:
                    d[section][key] = old
        return cls.from_dict(d)

    def override(self, assignments: list[str]) -> "RunConfig":
        """Apply `section.key=value` strings (values parsed as YAML), e.g. `train.lr=0.1`."""
        d = self.to_dict()
        for a in assignments:
            if "=" not in a:
                raise ConfigError(f"--set {a!r}: expected section.key=value, e.g. train.lr=0.01")
            key, raw = a.split("=", 1)
            parts = key.strip().split(".")
            node = d
            for p in parts[:-1]:
                if not isinstance(node.get(p), dict):
                    raise ConfigError(f"--set {a!r}: unknown setting {key!r}")
                node = node[p]
            if parts[-1] not in node and not (len(parts) >= 2 and parts[-2] == "kwargs"):
                raise ConfigError(f"--set {a!r}: unknown setting {key!r}")
            node[parts[-1]] = yaml.safe_load(raw)
        return RunConfig.from_dict(d)


def _build(cls, d: dict, where: str):
    if not isinstance(d, dict):
        raise ConfigError(f"setting {where or 'config'} must be a mapping, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(sorted(where + k for k in unknown))}; "
                          f"known: {', '.join(sorted(names))}")
    kwargs: dict[str, Any] = {}
    for k, v in d.items():
        t = hints[k]
        if dataclasses.is_dataclass(t):
            kwargs[k] = _build(t, v, f"{where}{k}.")
        else:
            kwargs[k] = _coerce(v, t, where + k)
    return cls(**kwargs)


def _coerce(v, t, name):
    """Check a scalar against its annotation; ints are accepted where floats are expected."""
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is typing.Literal:  # a fixed set of names: a typo is an error here, not a silent default later
        if v not in args:
            raise ConfigError(f"setting {name} must be one of {', '.join(map(str, args))}, got {v!r}")
        return v
    if isinstance(v, str) and v.lower() == "none" and type(None) in args:
        v = None  # `key=none` on the command line, as a Python user would write it (YAML's is null or ~)
    if v is None:
        if type(None) in args:
            return None
        raise ConfigError(f"setting {name} cannot be empty")
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return _coerce(v, inner[0], name)
    base = origin or t
    if base is float and isinstance(v, str):
        try:
            v = float(v)  # YAML 1.1 reads 3e-3 (no dot) as a string
        except ValueError:
            pass
    if base is float and isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if base is int and isinstance(v, bool):
        raise ConfigError(f"setting {name} must be a whole number, got {v!r}")
    if base in (list, dict) and isinstance(v, (tuple, list)) and base is list:
        return list(v)
    if not isinstance(v, base):
        raise ConfigError(f"setting {name} must be {getattr(base, '__name__', base)}, got {v!r}")
    return v
