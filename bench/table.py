"""Print the README's benchmark table from bench/results/*.json, so published numbers are exactly the measured ones:
    python bench/table.py            (markdown on stdout)"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ["fsdd", "fsdd-30s", "emodb", "cifar10", "cifar10-30min", "frontend", "latency", "hardware", "speechocean762-asr",
         "fsdd-connected", "speechocean762-verify"]


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def recorded_in(path: Path) -> str:
    """The commit that last wrote a result file, for results made before they recorded their own commit."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(path.parent), "log", "-1", "--format=%h", "--", path.name],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return f"≤ {out}" if out else "?"


def command_of(r: dict) -> str:
    """The exact command a result recorded, as it can be typed from the project root."""
    c = r.get("command", "")
    if "  (" in c:  # older results: "make bench BENCH=x  (python bench/x.py ARGS)"
        c = c.split("  (", 1)[1].rstrip(")").strip()
    return c.replace("python bench/", ".venv/bin/python bench/", 1) if c.startswith("python ") else c


def rows() -> list[str]:
    out = ["| benchmark | goal | target | measured | met | command | machine | code | date |",
           "|---|---|---|---|---|---|---|---|---|"]
    files = {p.stem: p for p in RESULTS.glob("*.json") if not p.stem.endswith("-subset")}
    for name in ORDER + sorted(set(files) - set(ORDER)):
        if name not in files:
            continue
        r = json.loads(files[name].read_text())
        m = r.get("machine", {})
        machine = (f"{m.get('cores', '?')} cores, {m.get('isa', 'ISA not recorded')}"
                   + (f", {m['gpu']}" if m.get("gpu") else ""))
        code = r.get("commit") or recorded_in(files[name])
        goals = r.get("goals") or {"(figures only)": {"target": "—", "measured": "see JSON", "met": None, "unit": ""}}
        for g, v in goals.items():
            met = {True: "yes", False: "**no**", None: "—"}[v.get("met")]
            unit = f" {v['unit']}" if v.get("unit") else ""
            out.append(f"| {name} | {g} | {fmt(v['target'])}{unit} | {fmt(v['measured'])}{unit} | {met} | "
                       f"`{command_of(r)}` | {machine} | {code} | {r.get('date', '')[:10]} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
