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


def rows() -> list[str]:
    out = ["| benchmark | goal | target | measured | met | command | machine | date | wall |",
           "|---|---|---|---|---|---|---|---|---|"]
    files = {p.stem: p for p in RESULTS.glob("*.json") if not p.stem.endswith("-subset")}
    for name in ORDER + sorted(set(files) - set(ORDER)):
        if name not in files:
            continue
        r = json.loads(files[name].read_text())
        m = r.get("machine", {})
        machine = f"{m.get('cores', '?')} cores {m.get('cpu', '')}" + (f", {m['gpu']}" if m.get("gpu") else "")
        # the exact command each result recorded (make bench BENCH=x runs `python bench/x.py` with no options)
        c = r.get("command", "")
        if "  (" in c:
            c = c.split("  (", 1)[1].rstrip(")").strip()
        cmd = f"`{c}`" if c.startswith("python ") else f"`make bench BENCH={name}`"
        goals = r.get("goals") or {"(figures only)": {"target": "—", "measured": "see JSON", "met": None, "unit": ""}}
        for g, v in goals.items():
            met = {True: "yes", False: "**no**", None: "—"}[v.get("met")]
            unit = f" {v['unit']}" if v.get("unit") else ""
            out.append(f"| {name} | {g} | {fmt(v['target'])}{unit} | {fmt(v['measured'])}{unit} | {met} | {cmd} | "
                       f"{machine} | {r.get('date', '')[:10]} | {r.get('wall_seconds', '?')} s |")
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
