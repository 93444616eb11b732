"""Run benchmarks, each as its own process (so that peak memory is per benchmark), streaming their output.

    python bench/run.py all                      # every entry of ALL below, one after another
    python bench/run.py cifar10                  # one: bench/cifar10.py → bench/results/cifar10.json
    python bench/run.py cifar10 --budget 1800    # arguments after a single name go to its script

Under `all`, a name whose script is missing is skipped with a message (a single missing name is an error, exit 2);
the exit status is 1 when any benchmark failed.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ALL = ["hardware", "frontend", "latency", "fsdd", "fsdd --fast", "emodb", "cifar10", "cifar10 --budget 1800",
       "cifar10_peer", "cifar10_peer --budget 480",
       "fsdd_connected", "ssl_speech", "speechocean762_asr", "speechocean762_verify", "serve_load",
       "compress --subset 500 --budget 120", "compress --data fsdd", "int8_saturation_probe",
       "augment_cifar10 policies", "augment_cifar10 longtail", "augment_fsdd --suite augment", "gan_cifar10",
       "trust_cifar10", "trust_fsdd", "noise_fsdd", "fairness_eer", "fairness_speechocean762", "frames",
       "av_digits", "auto", "fewshot_fsdd", "fewshot_cifar10", "ssl_cifar10", "semi_cifar10", "transfer_caltech7",
       "tune_bench", "ddp", "federated_fsdd"]  # "name args": the script


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    name, extra = argv[0], argv[1:]
    if name == "all" and extra:
        print("bench: arguments go to one benchmark at a time, not to `all`", file=sys.stderr)
        return 2
    names = ALL if name == "all" else [name]
    status: dict[str, str] = {}
    for entry in names:
        n, *fixed = entry.split()
        extra = [*fixed, *argv[1:]]
        script = BENCH / f"{n}.py"
        if not script.is_file():
            known = ", ".join(sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in ("common", "run")))
            if name != "all":  # asked for by name: a typo must not pass as success
                print(f"bench: {script.relative_to(BENCH.parent)} does not exist (benchmarks here: {known})",
                      file=sys.stderr)
                return 2
            print(f"== {n}: skipped, {script.relative_to(BENCH.parent)} does not exist", flush=True)
            status[entry] = "skipped (no script)"
            continue
        print(f"== {n}: {sys.executable} {script.relative_to(BENCH.parent)} {' '.join(extra)}".rstrip(), flush=True)
        t = time.time()
        try:
            rc = subprocess.call([sys.executable, str(script), *extra], cwd=BENCH.parent)  # output streams through
        except KeyboardInterrupt:  # the child got the Ctrl-C too
            print(f"\n== {n}: interrupted", flush=True)
            return 130
        status[entry] = f"{'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.time() - t:.0f} s"
    print("== summary: " + "; ".join(f"{n} {s}" for n, s in status.items()), flush=True)
    return 1 if any(s.startswith("FAILED") for s in status.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
