"""Tasks beyond one label per clip, each on the same data layer, front end, engine and run folder:

    transcribe.py   speech to text (CTC), with decoding, long files and streaming from seehear.speech
    speakers.py     speaker embeddings: train, enroll, verify, identify

Each exposes `train(data, out, ...)` with the signature of seehear.api.train, which dispatches on `task`.
"""
