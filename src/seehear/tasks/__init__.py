"""Tasks: what a run learns. Each is one file over the shared run lifecycle of base.py (settings → run folder →
split → fit → measure → files), and exposes `TASK` (its Task) plus what a trained run of it can do:

    classify.py     a label per image or clip (the default): evaluate, predict
    transcribe.py   speech to text (CTC), with decoding, long files and streaming from seehear.speech
    speakers.py     speaker embeddings: enroll, verify, identify

seehear.api dispatches on the task; each task's CLI commands live beside it (*_cli.py).
"""
