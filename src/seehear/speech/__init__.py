"""Speech-specific pieces that sit on top of the models, used by the transcribe and speakers tasks:

    units.py      text <-> CTC output units (characters or sentencepiece subwords)
    ngram.py      a word n-gram language model (ARPA) built from text
    decoding.py   CTC decoding: greedy, and beam search with the n-gram (flashlight-text via torchaudio)
    segments.py   long recordings read in blocks and cut into speech segments by a voice-activity detector
    streaming.py  transcription of audio that arrives in chunks
    formats.py    transcripts as text, JSON or SRT subtitles
"""
