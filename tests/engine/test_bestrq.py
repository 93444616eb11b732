"""BEST-RQ pieces (engine/bestrq.py): targets fixed by the seed, masks only where asked and only within each
recording, losses blind to padding, the contrastive loss's in-recording negatives."""
import torch

from seehear.config import RunConfig
from seehear.engine.bestrq import RandomQuantizer, mask_inputs, masked_loss, span_mask, ssl_loss
from seehear.models.registry import create_model


def _feats(seed=0, b=3, f=16, t=37):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, f, t, generator=g), torch.tensor([37, 25, 9])


def test_targets_are_fixed_by_the_seed_and_blind_to_padding(tmp_path):
    x, frames = _feats()
    q = RandomQuantizer(16 * 4, 64, 8, seed=3)
    codes, n = q.targets(x, frames, 4)
    assert codes.shape == (3, 10) and n.tolist() == [10, 7, 3]  # ceil(T / 4), as the encoders subsample
    again, _ = RandomQuantizer(16 * 4, 64, 8, seed=3).targets(x, frames, 4)
    assert torch.equal(codes, again)
    other, _ = RandomQuantizer(16 * 4, 64, 8, seed=4).targets(x, frames, 4)
    assert not torch.equal(codes, other)
    assert len(torch.unique(codes)) > 5  # random projections spread real frames over many codes
    # values past a recording's end do not move any of its valid targets
    y = x.clone()
    y[1, :, 25:] = 50.0
    y[2, :, 9:] = -50.0
    moved, _ = q.targets(y, frames, 4)
    for b, k in enumerate(n.tolist()):
        assert torch.equal(moved[b, :k], codes[b, :k])
    # saved and loaded: the same codebook and projection
    q.save(tmp_path / "q.safetensors")
    loaded = RandomQuantizer(16 * 4, 64, 8, seed=99).load(tmp_path / "q.safetensors")
    assert torch.equal(loaded.targets(x, frames, 4)[0], codes)


def test_span_mask_and_masked_inputs_touch_only_the_chosen_frames():
    lengths = torch.tensor([40, 20, 3])
    m = span_mask(lengths, 40, 0.4, 2, torch.Generator().manual_seed(0))
    assert torch.equal(m, span_mask(lengths, 40, 0.4, 2, torch.Generator().manual_seed(0)))
    for b, n in enumerate(lengths.tolist()):
        assert not m[b, n:].any()  # never past a recording's end
        assert abs(int(m[b, :n].sum()) - round(0.4 * n)) <= 2  # ~mask_prob of the frames, whole spans
    feats = torch.randn(3, 1, 8, 160)
    frames = torch.tensor([160, 80, 12])
    out = mask_inputs(feats, m, frames, 4, 0.1, torch.Generator().manual_seed(1))
    per_input = m.repeat_interleave(4, dim=1) & (torch.arange(160)[None, :] < frames[:, None])
    changed = (out != feats).any(dim=2)[:, 0]
    assert torch.equal(changed, per_input)  # exactly the input frames under the masked output frames
    assert out[per_input[:, None, None, :].expand_as(out)].std() < 0.2  # replaced by N(0, 0.1) noise


def test_masked_loss_ignores_padding():
    torch.manual_seed(0)
    cfg = RunConfig()
    acoustic = create_model("conformer_ctc_tiny", num_classes=32, in_channels=1, input_size=(16, 0)).eval()
    q = RandomQuantizer(16 * 4, 32, 8, seed=0)
    feats, frames = torch.randn(2, 1, 16, 60), torch.tensor([60, 33])
    feats[1, :, :, 33:] = 0.0
    codes, n_out = q.targets(feats[:, 0], frames, 4)
    mask = span_mask(n_out, codes.shape[1], 0.4, 2, torch.Generator().manual_seed(0))
    for method in ("masked", "contrastive"):
        cfg.pretrain.method = method
        if method == "contrastive":
            acoustic = create_model("conformer_ctc_tiny", num_classes=8, in_channels=1, input_size=(16, 0)).eval()
        with torch.no_grad():
            ref = masked_loss(acoustic, q, feats, frames, codes, n_out, mask, cfg.pretrain,
                              torch.Generator().manual_seed(5))
            noisy = feats.clone()
            noisy[1, :, :, 33:] = torch.randn(16, 27) * 10
            got = masked_loss(acoustic, q, noisy, frames, codes, n_out, mask, cfg.pretrain,
                              torch.Generator().manual_seed(5))
        assert ref[2] == got[2] > 0 and torch.allclose(ref[0], got[0], atol=1e-5), method
        # ...while a change inside a recording does change it
        inside = feats.clone()
        inside[1, :, :, :10] += 3.0
        with torch.no_grad():
            moved = masked_loss(acoustic, q, inside, frames, codes, n_out, mask, cfg.pretrain,
                                torch.Generator().manual_seed(5))
        assert not torch.allclose(ref[0], moved[0], atol=1e-4), method


def test_ssl_loss_counts_selected_frames_and_contrastive_uses_the_recording_s_codes():
    codes = torch.tensor([[1, 2, 3, 0], [2, 2, 2, 2]])
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    sel = torch.tensor([[True, False, True, True], [True, False, True, False]])
    scores = torch.zeros(2, 4, 6)
    scores[0, 0, 1] = scores[0, 2, 5] = scores[1, 0, 2] = 10.0  # right, wrong (5), right
    loss, correct, count = ssl_loss(scores, codes, sel, valid, "masked")
    assert count == 3 and correct == 2  # padding (row 0 frame 3, row 1 frame 2) is never counted
    # contrastive: only codes present in the recording compete; code 5 is not in row 0, so its score is ignored
    closs, _, _ = ssl_loss(scores, codes, sel, valid, "contrastive")
    assert closs < loss
    # row 1 holds one code only: nothing to tell apart, nothing to learn
    one, _, n1 = ssl_loss(scores[1:], codes[1:], sel[1:], valid[1:], "contrastive")
    assert n1 == 1 and float(one) == 0.0
