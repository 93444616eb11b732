"""`seehear speakers enroll | verify | identify | list`: argument parsing only; the work is in seehear.tasks.speakers.

torch is imported inside the handlers, so that `seehear --help` stays fast."""
from __future__ import annotations

import json


def add_commands(sub) -> None:
    sp = sub.add_parser("speakers", help="enroll voices in a speaker run (--task speakers), verify and identify them")
    ss = sp.add_subparsers(dest="speakers_command", required=True, metavar="COMMAND")

    en = ss.add_parser("enroll", help="store the voice of NAME from one or more recordings")
    en.add_argument("run")
    en.add_argument("name")
    en.add_argument("files", nargs="+", metavar="FILE")
    en.add_argument("--json", action="store_true", help="print JSON")
    en.set_defaults(handler=_enroll)

    ve = ss.add_parser("verify", help="is FILE spoken by NAME? exit 0 = accepted, 1 = rejected")
    ve.add_argument("run")
    ve.add_argument("name")
    ve.add_argument("file")
    ve.add_argument("--json", action="store_true", help="print JSON")
    ve.set_defaults(handler=_verify)

    ide = ss.add_parser("identify", help="the enrolled speakers closest to FILE, best first")
    ide.add_argument("run")
    ide.add_argument("file")
    ide.add_argument("--top-k", type=int, default=3)
    ide.add_argument("--json", action="store_true", help="print JSON")
    ide.set_defaults(handler=_identify)

    ls = ss.add_parser("list", help="the enrolled speakers of RUN")
    ls.add_argument("run")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=_list)


def _enroll(a) -> int:
    from seehear.tasks.speakers import enroll

    r = enroll(a.run, a.name, a.files)
    print(json.dumps(r, indent=2) if a.json else f"enrolled {r['speaker']} from {r['utterances']} recording(s)")
    return 0


def _verify(a) -> int:
    from seehear.tasks.speakers import verify

    r = verify(a.run, a.name, a.file)
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        word = "accepted" if r["accepted"] else "rejected"
        print(f"{word}: {a.file} vs {r['speaker']}  score {r['score']:.3f} (threshold {r['threshold']:.3f})")
    return 0 if r["accepted"] else 1


def _identify(a) -> int:
    from seehear.tasks.speakers import identify

    rows = identify(a.run, a.file, top_k=a.top_k)
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        for i, r in enumerate(rows, 1):
            print(f"{i}. {r['speaker']:<24} {r['score']:.3f}{'' if r['accepted'] else '  (below threshold)'}")
    return 0


def _list(a) -> int:
    from pathlib import Path

    from seehear.errors import RunError

    if not (Path(a.run) / "meta.json").is_file():
        raise RunError(f"run folder {a.run} does not exist or holds no run (no meta.json)")
    from seehear.tasks.speakers import describe, enrolled

    idx = enrolled(a.run)
    if a.json:
        print(json.dumps(idx, indent=2))
        return 0
    print(f"{a.run}: {describe(a.run)}; {len(idx)} speaker(s) enrolled")
    for name, info in sorted(idx.items()):
        print(f"  {name:<24} {info['utterances']} recording(s), {info['enrolled']}")
    return 0
