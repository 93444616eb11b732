"""`seehear transcribe RUN AUDIO...`: argument parsing only; the work is in seehear.tasks.transcribe and
seehear.speech.streaming."""
from __future__ import annotations

import json
import sys


def add_commands(sub) -> None:
    p = sub.add_parser("transcribe", help="speech to text with a transcription run (long files are cut on "
                                          "silence; --stream reads audio in chunks as it arrives)")
    p.add_argument("run")
    p.add_argument("inputs", nargs="*", metavar="AUDIO", help="audio files, or - for raw 16-bit mono PCM on "
                                                              "standard input with --stream")
    p.add_argument("--format", choices=["text", "json", "srt"], default="text")
    p.add_argument("--decoder", choices=["greedy", "beam"], help="default: the run's (transcribe.decoder)")
    p.add_argument("--hotword", action="append", default=None, metavar="WORD",
                   help="a word the beam search favours (a name, a term); repeatable; the boost is the run's "
                        "transcribe.hotword_boost")
    p.add_argument("--stream", action="store_true", help="feed the audio in chunks and print partial and final "
                                                         "text as it comes (needs a streaming model)")
    p.add_argument("--chunk-ms", type=int, default=160, help="chunk size for --stream")
    p.add_argument("--mic", action="store_true", help="stream from the default microphone (sounddevice) until "
                                                      "Ctrl-C; implies --stream")
    p.set_defaults(handler=_cmd_transcribe)


def _cmd_transcribe(a) -> int:
    from seehear.errors import ConfigError

    a.loaded = None
    if a.hotword:
        if a.decoder == "greedy":
            raise ConfigError("--hotword steers the beam search: it does nothing with --decoder greedy")
        from seehear.tasks.transcribe import load

        a.loaded = load(a.run, a.decoder, a.hotword)
        if a.loaded.settings["decoder"] != "beam":
            raise ConfigError("--hotword steers the beam search, and this run decodes greedily: add --decoder beam")
    if a.mic:
        if a.inputs:
            raise ConfigError("--mic reads the microphone: give no AUDIO files with it")
        return _stream(a, microphone=True)
    if not a.inputs:
        raise ConfigError("give AUDIO files to transcribe (or - with --stream, or --mic)")
    if a.stream:
        return _stream(a)
    from seehear.speech.formats import to_json, to_srt
    from seehear.tasks.transcribe import transcribe

    rows = transcribe(a.run, a.inputs, decoder=a.decoder, loaded=a.loaded)
    for r in rows:
        if "error" in r:
            print(f"seehear: {r['error']}", file=sys.stderr)
            continue
        for note in r.get("notes", []):
            print(f"seehear: note: {r['file']}: {note}", file=sys.stderr)
        if a.format == "json":
            print(json.dumps({**to_json(r["file"], r["segments"]), "seconds": r["seconds"],
                              "compute_seconds": r["compute_seconds"], **({"notes": r["notes"]} if
                                                                          r.get("notes") else {})}))
        elif a.format == "srt":
            if len(rows) > 1:
                print(f"# {r['file']}")
            print(to_srt(r["segments"]))
        else:
            print(f"{r['file']}\t{r['text']}" if len(rows) > 1 else r["text"])
    return 1 if rows and all("error" in r for r in rows) else 0


def _stream(a, microphone: bool = False) -> int:
    from seehear.speech.streaming import StreamingTranscriber

    s = StreamingTranscriber(a.run, decoder=a.decoder, loaded=a.loaded)
    sr = s.t.cfg.audio.sample_rate
    step = max(1, int(sr * a.chunk_ms / 1000))
    tty = sys.stdout.isatty()
    if microphone:
        try:
            for chunk in _microphone(sr, step):
                _show(s.feed(chunk), tty, a.format)
        except KeyboardInterrupt:
            pass  # Ctrl-C ends the stream; what was said so far is flushed below
        _show(s.finish(), tty, a.format)
        return 0
    for path in a.inputs:
        s.reset()
        for chunk in _chunks(path, sr, step):
            out = s.feed(chunk)
            _show(out, tty, a.format)
        _show(s.finish(), tty, a.format)
    return 0


def _microphone(sr: int, step: int):
    """int16 chunks of `step` samples from the default input device at the run's rate."""
    import queue

    from seehear.errors import MissingToolError

    try:
        import sounddevice as sd
    except OSError:  # the PortAudio library itself is missing
        raise MissingToolError("the microphone needs PortAudio: sudo apt-get install -y libportaudio2") from None
    chunks: queue.Queue = queue.Queue(maxsize=64)  # ~10 s at 160 ms: a stalled model drops audio, not memory

    def put(data, frames, time, status):
        try:
            chunks.put_nowait(data[:, 0].copy())
        except queue.Full:
            pass

    try:
        stream = sd.InputStream(samplerate=sr, channels=1, dtype="int16", blocksize=step, callback=put)
    except (sd.PortAudioError, ValueError) as e:
        raise MissingToolError(f"no usable microphone ({str(e).splitlines()[0]}); check that one is connected "
                               f"and not in use, or stream a file with --stream") from None
    with stream:
        while True:
            yield chunks.get()


def _chunks(path: str, sr: int, step: int):
    import numpy as np

    if path == "-":  # raw s16le mono at the run's rate, e.g. `arecord -f S16_LE -r 16000 | seehear ... -`
        while True:
            data = sys.stdin.buffer.read(2 * step)
            if not data:
                return
            yield np.frombuffer(data[: len(data) // 2 * 2], dtype=np.int16)
    from seehear.speech.segments import read_blocks

    rest = np.zeros(0, dtype=np.float32)  # chunks of `step` across block boundaries, as from a microphone
    for block in read_blocks(path, sample_rate=sr, block_seconds=max(1.0, step / sr)):
        rest = np.concatenate([rest, block])
        while len(rest) >= step:
            yield rest[:step]
            rest = rest[step:]
    if len(rest):
        yield rest


def _show(update: dict, tty: bool, fmt: str) -> None:
    for f in update["final"]:
        if fmt == "json":
            print(json.dumps({"final": f}), flush=True)
        else:
            print(("\r\033[K" if tty else "") + f"[{f['start']:.2f}-{f['end']:.2f}] {f['text']}", flush=True)
    if update["partial"]:
        if fmt == "json":
            print(json.dumps({"partial": update["partial"]}), flush=True)
        elif tty:
            print("\r\033[K" + update["partial"], end="", flush=True)
