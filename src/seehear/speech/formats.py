"""Transcripts out: plain text, JSON, SubRip (SRT) and WebVTT subtitles.

A transcript is a list of segments, each a dict
    {"start": float, "end": float, "text": str, "words": [{"word": str, "start": float, "end": float}, ...]}
with "words" optional. Subtitle cues are cut at word boundaries; with word timings each cue is timed by its own
words, without them the segment's time is shared among its words by length (a good guess for steady speech).
"""
from __future__ import annotations

from dataclasses import dataclass

_MIN_CUE_MS = 1  # a cue must last a little: players drop cues with end <= start


@dataclass
class _Word:
    text: str
    start: float
    end: float


def to_text(segments) -> str:
    """The segments' text, joined by single spaces."""
    return " ".join(t for s in segments if (t := " ".join(str(s.get("text", "")).split())))


def to_json(file, segments) -> dict:
    """JSON-able dict: {"file", "text", "segments": [{"start", "end", "text"[, "words"]}]}, times in seconds
    rounded to the millisecond."""
    out = []
    for s in segments:
        d = {"start": round(float(s["start"]), 3), "end": round(float(s["end"]), 3),
             "text": " ".join(str(s.get("text", "")).split())}
        if s.get("words"):
            d["words"] = [{"word": str(w["word"]).strip(), "start": round(float(w["start"]), 3),
                           "end": round(float(w["end"]), 3)} for w in s["words"]]
        out.append(d)
    return {"file": str(file), "text": to_text(segments), "segments": out}


def to_srt(segments, max_chars: int = 42, max_seconds: float = 6.0, max_lines: int = 2) -> str:
    """SubRip: numbered cues `HH:MM:SS,mmm --> HH:MM:SS,mmm`, at most max_lines lines of at most max_chars each,
    each cue at most max_seconds long where word timings allow, and no cue overlapping the next."""
    cues = _cues(segments, max_chars, max_seconds, max_lines)
    return "".join(f"{i}\n{_ts(a, ',')} --> {_ts(b, ',')}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))


def to_vtt(segments, max_chars: int = 42, max_seconds: float = 6.0, max_lines: int = 2) -> str:
    """WebVTT: the same cues as to_srt with '.' before the milliseconds and a WEBVTT header."""
    cues = _cues(segments, max_chars, max_seconds, max_lines)
    return "WEBVTT\n\n" + "".join(f"{_ts(a, '.')} --> {_ts(b, '.')}\n{text}\n\n" for a, b, text in cues)


def _ts(ms: int, sep: str) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _words(seg, max_chars: int) -> list[_Word]:
    start, end = float(seg["start"]), max(float(seg["start"]), float(seg["end"]))
    timed = seg.get("words") or []
    if timed and all("start" in w and "end" in w for w in timed):
        words = [_Word(str(w["word"]).strip(), float(w["start"]), float(w["end"])) for w in timed]
        words = [w for w in words if w.text]
    else:  # no timings: share the segment's time by word length (+1 for the space)
        texts = str(seg.get("text", "")).split()
        total = sum(len(t) + 1 for t in texts) or 1
        words, t = [], start
        for text in texts:
            d = (end - start) * (len(text) + 1) / total
            words.append(_Word(text, t, t + d))
            t += d
    out = []
    for w in words:  # a word longer than a line (a URL, say) is broken into line-sized pieces
        pieces = [w.text[i:i + max_chars] for i in range(0, len(w.text), max_chars)]
        step = (w.end - w.start) / len(pieces)
        out += [_Word(p, w.start + k * step, w.start + (k + 1) * step) for k, p in enumerate(pieces)]
    return out


def _cues(segments, max_chars: int, max_seconds: float, max_lines: int) -> list[tuple[int, int, str]]:
    if max_chars < 1 or max_lines < 1 or max_seconds <= 0:
        raise ValueError(f"subtitles need max_chars >= 1, max_lines >= 1, max_seconds > 0 "
                         f"(got {max_chars}, {max_lines}, {max_seconds})")
    raw: list[tuple[float, float, list[list[str]]]] = []
    for seg in sorted(segments, key=lambda s: float(s["start"])):
        lines: list[list[str]] = []
        c0 = c1 = 0.0
        for w in _words(seg, max_chars):
            if lines and w.end - c0 > max_seconds:  # the cue would stay on screen too long
                raw.append((c0, c1, lines))
                lines = []
            if not lines:
                lines, c0 = [[w.text]], w.start
            elif len(" ".join(lines[-1] + [w.text])) <= max_chars:
                lines[-1].append(w.text)
            elif len(lines) < max_lines:
                lines.append([w.text])
            else:
                raw.append((c0, c1, lines))
                lines, c0 = [[w.text]], w.start
            c1 = w.end
        if lines:
            raw.append((c0, c1, lines))
    # Whole milliseconds first, then push starts past the previous end: cues touch but never overlap.
    cues, prev_end = [], 0
    for a, b, lines in raw:
        start = max(round(a * 1000), prev_end)
        end = max(round(b * 1000), start + _MIN_CUE_MS)
        cues.append((start, end, "\n".join(" ".join(line) for line in lines)))
        prev_end = end
    return cues


__all__ = ["to_text", "to_json", "to_srt", "to_vtt"]
