"""Audio backbones over [B, 1, F, T] features. Importing a family module registers its variants."""
from seehear.models.audio import bcresnet, cnn_lstm, conformer, kwt, lstm, tcresnet  # noqa: F401
from seehear.models.audio import ecapa  # noqa: F401,E402  (speaker embeddings)
from seehear.models.audio import ssl_encoder  # noqa: F401,E402  (a pretrained speech encoder as a classifier)
