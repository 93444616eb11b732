"""Transcription (CTC) acoustic models: features + lengths -> per-frame unit logits. One file per family;
importing a module registers its variants (task="transcribe")."""
from seehear.models.asr import conformer_ctc, lstm_ctc, transformer_ctc  # noqa: F401
