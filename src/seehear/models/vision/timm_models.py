"""Standard ImageNet backbones from timm (Wightman, "PyTorch Image Models"), by name, as `timm/<name>`.

Models are always built with `pretrained=False`: seehear never downloads. Transfer learning works from a LOCAL
weights file given as the `pretrained` kwarg (model.pretrained in the config): a .safetensors file, or a
.pth/.pt/.bin torch checkpoint (loaded with weights_only=True, so no code in the file runs). On loading
- classifier weights whose shape differs (another number of classes) are dropped and stay freshly initialised;
- the first conv is adapted when the channel count differs (timm's adapt_input_conv: summed for grayscale,
  repeated and rescaled otherwise);
- a ViT's position embedding is resampled when the image size differs;
- anything else that does not fit is a ConfigError naming the file, not a silently half-loaded model.
(The loading itself is registry.load_pretrained, shared with seehear's own models.)

Papers: ResNet (He et al. 2016), MobileNetV3 (Howard et al. 2019, "Searching for MobileNetV3"), EfficientNet (Tan
& Le 2019), ViT (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"; tiny variant from DeiT, Touvron 2021).
"""
from __future__ import annotations

import torch.nn as nn

from seehear.models.registry import load_pretrained, register_model

TIMM_MODELS = {
    "resnet18": "ResNet-18 (He et al. 2016), 11M params, ImageNet-style stem",
    "mobilenetv3_small_100": "MobileNetV3-Small 1.0 (Howard et al. 2019), 1.5M params",
    "mobilenetv3_large_100": "MobileNetV3-Large 1.0 (Howard et al. 2019), 4.2M params",
    "efficientnet_b0": "EfficientNet-B0 (Tan & Le 2019), 4M params",
    "vit_tiny_patch16_224": "ViT-Tiny/16 (Dosovitskiy et al. 2021; DeiT-Ti), 5.5M params, img_size = input size",
}


def _factory(timm_name: str):
    def build(num_classes: int, in_channels: int, input_size, pretrained: str | None = None,
              dropout: float | None = None, drop_path: float | None = None, **kwargs) -> nn.Module:
        import timm  # lazy: importing timm costs a second, and only these models need it

        if dropout is not None:
            kwargs["drop_rate"] = dropout
        if drop_path is not None:
            kwargs["drop_path_rate"] = drop_path
        if timm_name.startswith("vit"):
            kwargs.setdefault("img_size", tuple(int(s) for s in input_size))
        model = timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_channels,
                                  **kwargs)
        if pretrained:
            cfg = getattr(model, "pretrained_cfg", {}) or {}
            load_pretrained(model, pretrained, first_conv=cfg.get("first_conv"), classifier=cfg.get("classifier", ()),
                            name=f"timm/{timm_name}")
        return model

    build.__name__ = timm_name
    build.__doc__ = TIMM_MODELS[timm_name]
    return build


for _n, _desc in TIMM_MODELS.items():
    register_model(f"timm/{_n}", "image", _desc)(_factory(_n))
