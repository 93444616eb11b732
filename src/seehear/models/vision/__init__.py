"""Image backbones (and image-sequence models, frames.py). Importing a family module registers its variants."""
from seehear.models.vision import fastnet, frames, resnet_cifar, small_cnn, timm_models  # noqa: F401
