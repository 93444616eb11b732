"""Transcript formats: text, JSON, and SRT/VTT parsed back and checked against the SubRip rules."""
from __future__ import annotations

import json
import re

import pytest

from seehear.speech.formats import to_json, to_srt, to_text, to_vtt

CUE = re.compile(r"(\d+)\n(\d\d):(\d\d):(\d\d),(\d\d\d) --> (\d\d):(\d\d):(\d\d),(\d\d\d)\n((?:.+\n)+)\n")


def _ms(h, m, s, ms):
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)


def parse_srt(srt: str) -> list[tuple[int, int, int, list[str]]]:
    """(number, start_ms, end_ms, lines) per cue; the whole text must be cues and nothing else."""
    cues, pos = [], 0
    for m in CUE.finditer(srt):
        assert m.start() == pos, f"junk before cue at {pos}: {srt[pos:m.start()]!r}"
        g = m.groups()
        cues.append((int(g[0]), _ms(*g[1:5]), _ms(*g[5:9]), g[9].rstrip("\n").split("\n")))
        pos = m.end()
    assert pos == len(srt), f"junk at the end: {srt[pos:]!r}"
    return cues


def check_srt(srt, max_chars=42, max_lines=2):
    cues = parse_srt(srt)
    assert [c[0] for c in cues] == list(range(1, len(cues) + 1))
    for _, a, b, lines in cues:
        assert a < b
        assert 1 <= len(lines) <= max_lines and all(0 < len(line) <= max_chars for line in lines), lines
    assert all(p[2] <= n[1] for p, n in zip(cues, cues[1:])), "cues overlap"
    return cues


def _timed(text, start, word_seconds=0.4, gap=0.1):
    words, t = [], start
    for w in text.split():
        words.append({"word": w, "start": round(t, 3), "end": round(t + word_seconds, 3)})
        t += word_seconds + gap
    return {"start": start, "end": words[-1]["end"], "text": text, "words": words}


LONG = ("this is a fairly long sentence that goes on and on well past the length of a single subtitle line "
        "so that it must be broken into several cues at word boundaries")


def test_text_and_json():
    segs = [{"start": 0.5, "end": 1.2, "text": " hello  world "}, {"start": 2.0, "end": 2.5, "text": ""},
            _timed("good bye", 3.0)]
    assert to_text(segs) == "hello world good bye"
    d = json.loads(json.dumps(to_json("a/b.wav", segs)))
    assert d["file"] == "a/b.wav" and d["text"] == "hello world good bye"
    assert [s["text"] for s in d["segments"]] == ["hello world", "", "good bye"]
    assert "words" not in d["segments"][0]
    assert d["segments"][2]["words"][1] == {"word": "bye", "start": 3.5, "end": 3.9}
    assert to_text([]) == "" and to_json("x", [])["segments"] == []


def test_srt_with_word_timings_cuts_at_words_and_keeps_their_times():
    seg = _timed(LONG, 10.0)
    cues = check_srt(to_srt([seg]))
    assert len(cues) >= 3
    # every word once, in order, never split
    assert " ".join(" ".join(c[3]) for c in cues) == LONG
    starts = {round(w["start"] * 1000): w["word"] for w in seg["words"]}
    ends = {round(w["end"] * 1000) for w in seg["words"]}
    for _, a, b, lines in cues:  # each cue runs from its first word's start to its last word's end
        assert starts[a] == lines[0].split()[0] and b in ends
        assert b - a <= 6000


def test_srt_max_seconds_and_max_chars_are_respected():
    seg = _timed(LONG, 0.0, word_seconds=0.9)  # slow speech: the time limit bites before the line limit
    cues = check_srt(to_srt([seg], max_chars=30, max_seconds=3.0), max_chars=30)
    assert all(b - a <= 3000 for _, a, b, _ in cues)
    assert max(len(c[3]) for c in check_srt(to_srt([_timed(LONG, 0.0, 0.1, 0.0)]))) == 2  # fast: two lines
    one_line = check_srt(to_srt([seg], max_chars=20, max_lines=1), max_chars=20, max_lines=1)
    assert all(len(c[3]) == 1 for c in one_line)


def test_srt_without_word_timings_spreads_the_segment():
    seg = {"start": 3723.5, "end": 3733.5, "text": LONG}  # past one hour
    cues = check_srt(to_srt([seg]))
    assert to_srt([seg]).startswith("1\n01:02:03,500 --> ")
    assert cues[0][1] == 3_723_500 and cues[-1][2] == 3_733_500
    assert " ".join(" ".join(c[3]) for c in cues) == LONG


def test_srt_never_overlaps_even_when_segments_do():
    segs = [{"start": 1.0, "end": 3.0, "text": "first segment here"},
            {"start": 2.5, "end": 4.0, "text": "second overlaps it"},
            {"start": 4.0, "end": 4.0, "text": "zero"},  # zero length still gets a visible cue
            {"start": 0.2, "end": 0.8, "text": "out of order"}]
    cues = check_srt(to_srt(segs))
    assert [" ".join(c[3]) for c in cues] == ["out of order", "first segment here", "second overlaps it", "zero"]
    assert cues[2][1] == 3000 and cues[3][1] >= cues[2][2]


def test_a_word_longer_than_a_line_is_broken():
    url = "https://example.com/" + "x" * 70
    cues = check_srt(to_srt([{"start": 0, "end": 2, "text": f"see {url} now"}]))
    assert "".join("".join(c[3]) for c in cues).replace(" ", "") == f"see{url}now"


def test_empty_transcript_and_bad_limits():
    assert to_srt([]) == "" and to_srt([{"start": 0, "end": 1, "text": "  "}]) == ""
    assert to_vtt([]) == "WEBVTT\n\n"
    with pytest.raises(ValueError):
        to_srt([_timed("a b", 0)], max_chars=0)


def test_vtt_has_the_same_cues():
    segs = [_timed(LONG, 5.0)]
    vtt = to_vtt(segs)
    assert vtt.startswith("WEBVTT\n\n")
    srt_cues = parse_srt(to_srt(segs))
    blocks = vtt[len("WEBVTT\n\n"):].split("\n\n")[:-1]
    assert len(blocks) == len(srt_cues)
    for block, (_, a, b, lines) in zip(blocks, srt_cues):
        head, *text = block.split("\n")
        m = re.fullmatch(r"(\d\d):(\d\d):(\d\d)\.(\d\d\d) --> (\d\d):(\d\d):(\d\d)\.(\d\d\d)", head)
        assert m and (_ms(*m.groups()[:4]), _ms(*m.groups()[4:])) == (a, b) and text == lines
