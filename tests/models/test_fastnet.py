"""fastnet's data-derived parts: the frozen 2x2 patch-whitening layer and the identity-initialised conv groups."""
import torch

from seehear.models.vision.fastnet import WHITEN_EPS, ConvGroup, FastNet


def test_whitening_layer_decorrelates_patches_and_is_frozen():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(200, 1, 16, 16, generator=g)
    x = torch.cat([base, 0.9 * base + 0.1 * torch.randn(200, 1, 16, 16, generator=g),
                   torch.randn(200, 1, 16, 16, generator=g) * 3], dim=1)  # correlated, unequal channels
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # and correlated neighbours
    net = FastNet(10, in_channels=3)
    assert net.stem[0].weight.requires_grad
    net.init_from_data(x)
    conv = net.stem[0]
    assert not conv.weight.requires_grad and conv.bias.requires_grad
    with torch.no_grad():
        out = conv(x)  # [N, 24, 15, 15] before the GELU
    z = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    cov = torch.cov(z.T)
    off = cov - torch.diag(torch.diag(cov))
    assert off.abs().max() < 0.05, "whitened channels are uncorrelated"
    patches = x.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    eig = torch.linalg.eigvalsh(torch.cov(patches.T)).flip(0)  # descending, as the filters are ordered
    assert torch.allclose(torch.diag(cov), eig / (eig + WHITEN_EPS), atol=0.02), "unit variance, up to eps"
    b = conv.bias[:, None, None]
    assert torch.allclose(out[:, 12:] - b[12:], -(out[:, :12] - b[:12]), atol=1e-4), "each filter and its negative"


def test_conv_groups_start_as_identity_on_their_input_channels():
    grp = ConvGroup(4, 6).eval()
    x = torch.randn(2, 4, 8, 8)
    conv1 = grp.net[0]
    with torch.no_grad():
        y = conv1(x)
    assert torch.allclose(y[:, :4], x, atol=1e-6)
    assert conv1.weight[4:].abs().sum() > 0, "the extra channels keep a random init"
    conv2 = grp.net[4]
    with torch.no_grad():
        z = torch.randn(2, 6, 4, 4)
        assert torch.allclose(conv2(z), z, atol=1e-6)


def test_forward_backward_and_grayscale():
    net = FastNet(5, in_channels=1, widths=(8, 16, 16))
    net.init_from_data(torch.randn(20, 1, 12, 12))
    out = net(torch.randn(3, 1, 12, 12))
    assert out.shape == (3, 5)
    out.sum().backward()
    assert net.stem[0].weight.grad is None and net.classifier.weight.grad is not None


def test_airbench_knobs_logit_scale_and_frozen_bn_scale():
    torch.manual_seed(0)
    a = FastNet(4, widths=(8, 8, 8)).eval()
    b = FastNet(4, widths=(8, 8, 8), logit_scale=1 / 9, bn_weight=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(b(x), a(x) / 9, atol=1e-6)
    bn = [m for m in b.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn and all(not m.weight.requires_grad and m.bias.requires_grad for m in bn)


def test_norm_lr_scale_gives_norms_and_biases_their_own_learning_rate():
    from seehear.config import RunConfig
    from seehear.engine.classify import ClassifyModule
    from seehear.models.recognizer import build_recognizer

    cfg = RunConfig()
    cfg.model.name = "fastnet"
    cfg.train.optimizer, cfg.train.lr, cfg.train.norm_lr_scale = "sgd", 0.1, 64.0
    module = ClassifyModule(build_recognizer(cfg, ["a", "b"], "image"), cfg, steps_per_epoch=10)
    opt = module.configure_optimizers()["optimizer"]
    decay, norms, biases = opt.param_groups
    assert decay["initial_lr"] == 0.1 and norms["initial_lr"] == 6.4 and norms["weight_decay"] == 0.0
    bn = [p for m in module.model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()
          if p.requires_grad]
    assert {id(p) for p in norms["params"]} == {id(p) for p in bn} and all(p.ndim > 1 for p in decay["params"])
    # the whitening layer's bias is no norm: base lr (as airbench94), no decay by default
    assert biases["initial_lr"] == 0.1 and biases["weight_decay"] == 0.0 and len(biases["params"]) == 1


def test_pooling_rounds_down_unless_the_input_is_tiny():
    from seehear.models.vision.fastnet import fastnet

    def last_map(side):
        net = fastnet(3, 3, (side, side), widths=(4, 4, 4)).eval()
        with torch.no_grad():
            return net.groups(net.stem(torch.randn(1, 3, side, side))).shape[-1]

    assert last_map(32) == 3  # 31 -> 15 -> 7 -> 3: odd sizes round down (airbench's layout, fewer FLOPs)
    assert last_map(8) == 1  # 7 -> 4 -> 2 -> 1: rounding down would leave nothing, so it rounds up
    assert fastnet(3, 3, (32, 32), widths=(4, 4, 4), ceil_pool=True).groups[0].net[1].ceil_mode


def test_decay_norms_gives_norms_and_biases_the_weights_decay_per_step():
    from seehear.config import RunConfig
    from seehear.engine.classify import ClassifyModule
    from seehear.models.recognizer import build_recognizer

    cfg = RunConfig()
    cfg.model.name = "fastnet"
    cfg.train.optimizer, cfg.train.lr, cfg.train.norm_lr_scale, cfg.train.weight_decay = "sgd", 0.1, 64.0, 1e-3
    cfg.train.decay_norms = True
    module = ClassifyModule(build_recognizer(cfg, ["a", "b"], "image"), cfg, steps_per_epoch=10)
    groups = module.configure_optimizers()["optimizer"].param_groups
    # SGD shrinks a parameter by lr * weight_decay per step: the same for every group despite the norms' 64x lr
    shrink = [g["initial_lr"] * g["weight_decay"] for g in groups]
    assert len(groups) == 3 and max(shrink) - min(shrink) < 1e-12 and shrink[0] > 0


def test_whitening_bias_trains_early_then_freezes_as_the_trainer_reports_progress():
    from seehear.config import RunConfig
    from seehear.engine.classify import ClassifyModule
    from seehear.models.recognizer import build_recognizer
    from seehear.models.vision.fastnet import WHITEN_BIAS_UNTIL

    cfg = RunConfig()
    cfg.model.name, cfg.train.epochs = "fastnet", 10
    model = build_recognizer(cfg, ["a", "b"], "image")
    module = ClassifyModule(model, cfg, steps_per_epoch=10)
    bias = model.backbone.stem[0].bias
    seen = []
    for done in (0.0, WHITEN_BIAS_UNTIL - 0.01, WHITEN_BIAS_UNTIL, 0.9):
        module.progress = lambda d=done: d  # what the trainer would report at this epoch start
        module.on_train_epoch_start()
        seen.append(bias.requires_grad)
    assert seen == [True, True, False, False]
