import pytest

from seehear.config import RunConfig
from seehear.errors import ConfigError
from seehear.recipes import RECIPES, resolve


def test_yaml_round_trip(tmp_path):
    cfg = RunConfig().override(["train.lr=0.1", "audio.n_mels=64", "model.kwargs.width=8", "augment.speed=null"])
    cfg.to_yaml(tmp_path / "c.yaml")
    back = RunConfig.from_yaml(tmp_path / "c.yaml")
    assert back == cfg
    assert back.train.lr == 0.1 and back.audio.n_mels == 64 and back.model.kwargs == {"width": 8}
    assert back.augment.speed is None


def test_a_run_saved_before_a_setting_keeps_its_old_behaviour(tmp_path):
    """A pretraining run's config.yaml from before pretrain.projector existed resumes with the linear head its
    checkpoint holds; a new run, and any file that states the setting, get what they say."""
    import yaml

    d = RunConfig(task="pretrain").to_dict()
    assert d["pretrain"]["projector"] == "mlp"
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(d))
    del d["pretrain"]["projector"]
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(d))
    assert RunConfig.from_yaml(tmp_path / "old.yaml", complete=True).pretrain.projector == "linear"
    assert RunConfig.from_yaml(tmp_path / "new.yaml", complete=True).pretrain.projector == "mlp"
    # a user's settings file is not a saved run: what it leaves out takes today's default
    assert RunConfig.from_yaml(tmp_path / "old.yaml").pretrain.projector == "mlp"


def test_a_transcription_run_saved_before_train_batches_resumes_with_fixed_batches(tmp_path):
    """A transcription run whose config.yaml predates train.batches began with fixed batches and keeps them (should
    the default become redrawn, config.PREDATED must say so); a run that states redrawn gets it."""
    import yaml

    d = resolve("asr").override(["train.batches=redrawn"]).to_dict()
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(d))
    del d["train"]["batches"]
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(d))
    assert RunConfig.from_yaml(tmp_path / "old.yaml", complete=True).train.batches == "fixed"
    assert RunConfig.from_yaml(tmp_path / "new.yaml", complete=True).train.batches == "redrawn"


@pytest.mark.parametrize("bad, words", [
    ({"train": {"lrr": 1}}, "train.lrr"),
    ({"train": {"epochs": "many"}}, "train.epochs"),
    ({"train": {"epochs": True}}, "train.epochs"),
    ({"nope": {}}, "nope"),
    ({"train": 3}, "train"),
])
def test_bad_settings_are_named(bad, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        RunConfig.from_dict(bad)


def test_override_errors():
    with pytest.raises(ConfigError, match="unknown setting"):
        RunConfig().override(["train.nothing=1"])
    with pytest.raises(ConfigError, match="section.key=value"):
        RunConfig().override(["train.lr"])


def test_ints_accepted_for_floats():
    assert RunConfig.from_dict({"train": {"lr": 1}}).train.lr == 1.0


def test_bad_yaml_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RunConfig.from_yaml(p)
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.from_yaml(tmp_path / "missing.yaml")


def test_resolution_order():
    # defaults <- recipe <- user <- overrides
    cfg = resolve("audio-words", {"train": {"lr": 0.5, "epochs": 7}}, ["train.epochs=9"])
    assert cfg.model.name == RECIPES["audio-words"]["model"]["name"]
    assert cfg.train.lr == 0.5 and cfg.train.epochs == 9
    assert cfg.train.momentum == RunConfig().train.momentum  # untouched default


def test_every_recipe_is_valid():
    for name in RECIPES:
        resolve(name)


def test_recipe_model_kwargs_follow_the_recipe_model_only():
    from seehear.models.vision.fastnet import AIRBENCH
    from seehear.recipes import resolve

    # the registry carries fastnet's tuned settings; the resolved config records them
    assert resolve("image-small").model.kwargs == AIRBENCH
    assert resolve("image-small", overrides=["model.name=fastnet_wide"]).model.kwargs == AIRBENCH
    assert resolve("image-small", overrides=["model.name=resnet20"]).model.kwargs == {}
    assert resolve("image-small", {"model": {"name": "timm/resnet18"}}).model.kwargs == {}
    user = resolve("image-small", {"model": {"name": "resnet20", "kwargs": {"width": 32}}})
    assert user.model.kwargs == {"width": 32}
    # a recipe's own kwargs (image-photo keeps fastnet's factory scale) are dropped for another model
    assert resolve("image-photo").model.kwargs == {"logit_scale": 1.0, "bn_weight": True}
    assert resolve("image-photo", overrides=["model.name=resnet20"]).model.kwargs == {}
    assert resolve("image-photo", {"model": {"kwargs": {"dropout": 0.1}}}).model.kwargs == {
        "logit_scale": 1.0, "bn_weight": True, "dropout": 0.1}


def test_named_choices_reject_typos_when_the_config_is_read():
    cfg = RunConfig().override(["train.schedule=linear", "train.optimizer=muon"])
    assert (cfg.train.schedule, cfg.train.optimizer) == ("linear", "muon")
    for bad in ("train.schedule=linaer", "train.optimizer=adamax"):
        with pytest.raises(ConfigError, match="must be one of"):
            RunConfig().override([bad])


def test_none_clears_an_optional_setting_and_nothing_else():
    assert RunConfig().override(["train.grad_clip=none"]).train.grad_clip is None
    assert RunConfig().override(["train.grad_clip=null"]).train.grad_clip is None
    with pytest.raises(ConfigError, match="train.epochs"):
        RunConfig().override(["train.epochs=none"])
