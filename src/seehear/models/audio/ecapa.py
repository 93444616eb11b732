"""Speaker-embedding networks over [B, C, F, T] features: ECAPA-TDNN and the x-vector TDNN.

ECAPA-TDNN: Desplanques, Thienpondt, Demuynck 2020, "ECAPA-TDNN: Emphasized Channel Attention, Propagation and
Aggregation in TDNN Based Speaker Verification" (Interspeech 2020, arXiv:2005.07143). A 1D conv stem over the bands,
SE-Res2 blocks with growing dilation, multi-layer feature aggregation (the blocks' outputs concatenated), attentive
statistics pooling with global context, and a linear embedding layer. `ecapa_small` narrows the channels (256 instead
of 512/1024) so that it trains on two CPU cores.

x-vector: Snyder et al. 2018, "X-Vectors: Robust DNN Embeddings for Speaker Recognition" (ICASSP 2018): five TDNN
layers, mean+std pooling, an embedding layer; narrowed likewise.

Every model maps features to an embedding with `embed(x) -> [B, embed_dim]`; `forward` puts a bias-free linear head
(`classifier`) on it, whose rows double as the speaker prototypes of an AAM-softmax loss (seehear.tasks.speakers).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from seehear.models.registry import register_model


class ConvBN(nn.Sequential):
    """Conv1d -> ReLU -> BatchNorm (ECAPA's TDNN block: BN after the activation, as in the paper's code)."""

    def __init__(self, cin: int, cout: int, k: int = 1, dilation: int = 1):
        super().__init__(nn.Conv1d(cin, cout, k, dilation=dilation, padding=dilation * (k - 1) // 2),
                         nn.ReLU(inplace=True), nn.BatchNorm1d(cout))


class SE(nn.Module):
    """Squeeze-excitation over time: a per-channel gate from the clip's mean (global context)."""

    def __init__(self, c: int, bottleneck: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Conv1d(c, bottleneck, 1), nn.ReLU(inplace=True), nn.Conv1d(bottleneck, c, 1),
                                nn.Sigmoid())

    def forward(self, x):
        return x * self.fc(x.mean(dim=-1, keepdim=True))


class Res2(nn.Module):
    """Res2Net split: the channels in `scale` groups, each group's conv also sees the previous group's output, so
    one block covers several receptive fields at the cost of one narrow conv per group."""

    def __init__(self, c: int, k: int, dilation: int, scale: int):
        super().__init__()
        self.scale, w = scale, c // scale
        self.convs = nn.ModuleList(ConvBN(w, w, k, dilation) for _ in range(scale - 1))

    def forward(self, x):
        parts = x.chunk(self.scale, dim=1)
        out, y = [parts[0]], None
        for i, conv in enumerate(self.convs):
            y = conv(parts[i + 1] if y is None else parts[i + 1] + y)
            out.append(y)
        return torch.cat(out, dim=1)


class SERes2Block(nn.Module):
    def __init__(self, c: int, k: int, dilation: int, scale: int, se_bottleneck: int):
        super().__init__()
        self.body = nn.Sequential(ConvBN(c, c), Res2(c, k, dilation, scale), ConvBN(c, c), SE(c, se_bottleneck))

    def forward(self, x):
        return x + self.body(x)


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and std over time, with attention computed per channel from the frame and the
    clip's global mean and std (ECAPA's context-dependent pooling). Output [B, 2C]."""

    def __init__(self, c: int, bottleneck: int):
        super().__init__()
        self.att = nn.Sequential(nn.Conv1d(3 * c, bottleneck, 1), nn.ReLU(inplace=True), nn.BatchNorm1d(bottleneck),
                                 nn.Tanh(), nn.Conv1d(bottleneck, c, 1))

    @staticmethod
    def _stats(x, w):
        mean = (x * w).sum(dim=-1)
        var = ((x * x) * w).sum(dim=-1) - mean * mean
        return mean, var.clamp(min=1e-5).sqrt()  # the clamp keeps sqrt's gradient finite on constant channels

    def forward(self, x):
        t = x.shape[-1]
        mean, std = self._stats(x, torch.full_like(x[:, :1], 1.0 / t))
        ctx = torch.cat([x, mean[..., None].expand(-1, -1, t), std[..., None].expand(-1, -1, t)], dim=1)
        w = torch.softmax(self.att(ctx).float(), dim=-1).to(x.dtype)
        mean, std = self._stats(x, w)
        return torch.cat([mean, std], dim=1)


class SpeakerNet(nn.Module):
    """Shared: bands (times input channels) become conv channels; `trunk` gives [B, C', T]; pooling; embedding."""

    embed_dim: int

    def _flat(self, x):
        b, ch, f, t = x.shape
        return x.reshape(b, ch * f, t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class ECAPA(SpeakerNet):
    def __init__(self, num_classes: int, in_channels: int, input_size, channels: int = 256, scale: int = 8,
                 dilations=(2, 3, 4), attention: int = 128, se_bottleneck: int = 64, embed_dim: int = 192):
        super().__init__()
        c = channels
        self.embed_dim = embed_dim
        self.stem = ConvBN(in_channels * int(input_size[0]), c, 5)
        self.blocks = nn.ModuleList(SERes2Block(c, 3, d, scale, se_bottleneck) for d in dilations)
        mfa = c * len(dilations)
        self.mfa = ConvBN(mfa, mfa)  # multi-layer feature aggregation: all blocks' outputs, mixed
        self.pool = AttentiveStatsPool(mfa, attention)
        self.pool_bn = nn.BatchNorm1d(2 * mfa)
        self.fc = nn.Linear(2 * mfa, embed_dim)
        self.fc_bn = nn.BatchNorm1d(embed_dim)
        self.classifier = nn.Linear(embed_dim, num_classes, bias=False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(self._flat(x))
        outs = []
        for blk in self.blocks:
            h = blk(h)
            outs.append(h)
        h = self.mfa(torch.cat(outs, dim=1))
        return self.fc_bn(self.fc(self.pool_bn(self.pool(h))))


class XVector(SpeakerNet):
    def __init__(self, num_classes: int, in_channels: int, input_size, channels: int = 256, embed_dim: int = 192):
        super().__init__()
        c = channels
        self.embed_dim = embed_dim
        self.trunk = nn.Sequential(ConvBN(in_channels * int(input_size[0]), c, 5), ConvBN(c, c, 3, 2),
                                   ConvBN(c, c, 3, 3), ConvBN(c, c), ConvBN(c, 3 * c))
        self.fc = nn.Linear(6 * c, embed_dim)
        self.fc_bn = nn.BatchNorm1d(embed_dim)
        self.classifier = nn.Linear(embed_dim, num_classes, bias=False)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(self._flat(x))
        var = h.float().var(dim=-1, unbiased=False).clamp(min=1e-5)
        stats = torch.cat([h.mean(dim=-1), var.sqrt().to(h.dtype)], dim=1)
        return self.fc_bn(self.fc(stats))


@register_model("ecapa_small", "audio", "ECAPA-TDNN (Desplanques et al. 2020), 256 channels, ~2.0M params: "
                                        "speaker embeddings (embed())")
def ecapa_small(num_classes: int, in_channels: int, input_size, channels: int = 256, embed_dim: int = 192,
                scale: int = 8, attention: int = 128):
    return ECAPA(num_classes, in_channels, input_size, channels=channels, scale=scale, attention=attention,
                 embed_dim=embed_dim)


@register_model("xvector", "audio", "x-vector TDNN (Snyder et al. 2018), 256 channels, ~1.2M params: "
                                    "speaker embeddings (embed())")
def xvector(num_classes: int, in_channels: int, input_size, channels: int = 256, embed_dim: int = 192):
    return XVector(num_classes, in_channels, input_size, channels=channels, embed_dim=embed_dim)
