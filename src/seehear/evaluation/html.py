"""The HTML pieces every run page is built of (cards, tables, figures, number formats) and the page's style; one
place, so report.html, the trust section and the auto report look alike."""
from __future__ import annotations

import base64
from html import escape
from pathlib import Path

MAX_ROWS = 500  # long skipped/group lists are cut so the page stays quick to open

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:2rem auto;
 max-width:1100px;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd;
 padding-bottom:.2rem}.sub{color:#666;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}.card{border:1px solid #ddd;border-radius:8px;
 padding:.6rem 1rem;min-width:8rem}.card .v{font-size:1.5rem;font-weight:600}.card .k{color:#666;font-size:.85rem}
table{border-collapse:collapse;font-size:.9rem;margin:.5rem 0}th,td{padding:.25rem .7rem;text-align:left;
 border-bottom:1px solid #eee}th{background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.low td{background:#fff4f0}img{max-width:100%;height:auto;border:1px solid #eee}
table.kv td:first-child{color:#666}pre{background:#f6f6f6;padding:.8rem;overflow-x:auto;font-size:.85rem}.muted{color:#888}
"""
# order of known plots; any other *.png in the run folder is appended after these

def pct(x) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) else "—"


def num(x, digits=3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) else "—"


def duration(sec) -> str:
    if not isinstance(sec, (int, float)):
        return "—"
    sec = int(round(sec))
    h, rem = divmod(sec, 3600)
    m, s = divmod(rem, 60)
    return f"{h} h {m} min" if h else (f"{m} min {s} s" if m else f"{s} s")


def params(n) -> str:
    if not isinstance(n, (int, float)):
        return "—"
    return f"{n / 1e6:.2f} M" if n >= 1e6 else (f"{n / 1e3:.1f} k" if n >= 1e3 else str(int(n)))


def table(headers: list[str] | None, rows: list[list], numeric: set[int] = frozenset(), row_class=None) -> str:
    """HTML table; every cell is escaped here, so callers pass raw values. headers None: no header row."""
    head = "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr></thead>" if headers else ""
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{row_class(r)}"' if row_class and row_class(r) else ""
        cells = "".join(f'<td class="n">{escape(str(v))}</td>' if i in numeric else f"<td>{escape(str(v))}</td>"
                        for i, v in enumerate(row))
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def kv(pairs: list[tuple[str, object]]) -> str:
    rows = [[k, v] for k, v in pairs if v not in (None, "", {}, [])]
    return table(None, rows).replace("<table>", '<table class="kv">', 1) if rows else ""


def img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'


def cards(cards: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
        for k, v in cards) + "</div>"


