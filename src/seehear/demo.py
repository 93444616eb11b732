"""`make demo`: two recognizers trained and evaluated on data made on the spot (no download).

1. Handwritten digits: scikit-learn's 1,797 8x8 digits (they ship with the package) as PNG files, folder per class.
2. Spoken command words synthesized with espeak-ng in several voices, speeds and pitches; whole voices are held
   out, so the test measures words spoken by voices never heard in training.
"""
from __future__ import annotations

import time
from pathlib import Path

from seehear import api
from seehear.data.synth import make_digit_images, make_spoken_words, require_espeak

WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
WORD_PATTERN = r"(?P<label>[a-z]+)_(?P<speaker>[^_]+)_"


def run_demo(out: str | Path = "demo-runs") -> dict:
    out = Path(out)
    data = out / "data"
    results = {}
    t0 = time.time()
    print("== 1/2 handwritten digits (scikit-learn digits as PNG files)")
    digits = make_digit_images(data / "digits")
    r = api.train(digits, out / "digits", time_budget=50, overwrite=True)
    results["digits"] = r
    print(f"   digits: test accuracy {r.accuracy:.3f}  ({r.meta['train']['wall_seconds']:.0f}s)")

    print("== 2/2 spoken words (espeak-ng voices; held-out voices for test)")
    require_espeak()
    words = make_spoken_words(data / "words", WORDS)
    r = api.train(words, out / "words", label_pattern=WORD_PATTERN, split_by="speaker", time_budget=80,
                  overwrite=True)
    results["words"] = r
    print(f"   words: test accuracy on unheard voices {r.accuracy:.3f}  ({r.meta['train']['wall_seconds']:.0f}s)")

    total = time.time() - t0
    print(f"\ndemo finished in {total:.0f}s")
    # The demo's own record of what it measured, so that any figure quoted from it has a source.
    from seehear.atomic import write_json
    from seehear.engine.run_folder import machine, now, versions

    write_json(out / "demo.json", {"command": "make demo", "finished": now(), "seconds": round(total, 1),
                                   "machine": machine(), "versions": versions(),
                                   "results": {n: {"accuracy": r.accuracy, "macro_f1": r.metrics.get("macro_f1"),
                                                   "train_seconds": r.meta["train"]["train_seconds"],
                                                   "run": str(r.run_dir)} for n, r in results.items()}})
    for name, r in results.items():
        print(f"  {name:7s} accuracy {r.accuracy:.3f}  macro-F1 {r.metrics.get('macro_f1', float('nan')):.3f}  "
              f"report {r.run_dir / 'report.html'}")
    print(f"try:  .venv/bin/seehear predict {out / 'words'} {words}/yes_*_160_50.wav")
    return results


if __name__ == "__main__":
    run_demo()
