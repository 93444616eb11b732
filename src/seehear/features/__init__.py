"""Feature extraction and augmentation as torch modules / functions on whole batches (see docs/ARCHITECTURE.md)."""
from seehear.features.audio import (MFCC, LogMel, build_audio_frontend, feature_bands, frames, num_frames,
                                    num_samples)
from seehear.features.augment import SpecAugment, augment_images, augment_waves, cutmix, mixup
from seehear.features.image import ImageNormalize, channel_stats

__all__ = ["LogMel", "MFCC", "build_audio_frontend", "num_frames", "frames", "num_samples", "feature_bands",
           "ImageNormalize", "channel_stats", "augment_images", "augment_waves", "SpecAugment", "mixup", "cutmix"]
