"""Image backbones. Importing a family module registers its variants."""
from seehear.models.vision import fastnet, resnet_cifar, small_cnn, timm_models  # noqa: F401
