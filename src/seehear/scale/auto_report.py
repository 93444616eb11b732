"""What `seehear auto` leaves beside auto.json once it has chosen: best.yaml (the winner's settings as a config for
`seehear train DATA --config`) and report.html (every candidate with its rung results, the ranking per rung, the
choice and why; a self-contained page in the style of a run's report, linking to OUT/best/report.html).
"""
from __future__ import annotations

from html import escape
from pathlib import Path

import yaml

from seehear.atomic import write_text
from seehear.evaluation.html import CSS
from seehear.scale.candidates import ranking


def write_report(out: Path, state: dict) -> None:
    chosen = state["chosen"]
    settings = dict(candidate(state, chosen["name"])["settings"])
    final = state["rungs"][-1]["runs"].get(chosen["name"]) or {}
    if final.get("time_budget"):  # the winner's own training time, so that the config trains what OUT/best is
        settings = {**settings, "train": {**(settings.get("train") or {}), "time_budget": final["time_budget"]}}
    header = (f"# seehear auto: {chosen['name']} chosen of {len(state['candidates'])} candidates for {state['recipe']} "
              f"data (see auto.json and report.html beside this file).\n"
              f"# Use it with: seehear train DATA --config {out / 'best.yaml'} --out runs/NAME\n")
    write_text(out / "best.yaml", header + yaml.safe_dump(settings, sort_keys=False))
    write_text(out / "report.html", _html(out, state, settings))


def candidate(state: dict, name: str) -> dict:
    return next(c for c in state["candidates"] if c["name"] == name)


def why_chosen(state: dict) -> str:
    """The choice in a sentence, with the numbers it rests on: the winner's rung result, the runner-up, and what
    the winner reached when trained again as OUT/best."""
    rungs = [g for g in state["rungs"] if g["status"] == "done" and g["runs"]]
    search = [g for g in rungs if g is not state["rungs"][-1]] or rungs
    last = search[-1]
    order = ranking(last)
    winner = state["rungs"][-1]["candidates"][0]
    c = candidate(state, winner)
    x = last["runs"][winner]
    text = (f"chose {winner} (model {c['model']}, variant {c['variant']}): of {len(state['candidates'])} "
            f"candidates, it had the best validation accuracy in rung {last['rung']} ({x['val_accuracy']:.4f} after "
            f"{x['train_seconds']:.0f}s of training; {len(last['runs'])} of {len(last['candidates'])} candidates run, "
            f"{last['slot_seconds']:.0f}s each planned)")
    if last.get("cut"):
        text += f"; rung {last['rung']} was cut short ({last['cut']})"
    if len(order) > 1:
        y = last["runs"][order[1]]
        tie = " (same accuracy: lower validation loss)" if y["val_accuracy"] == x["val_accuracy"] else ""
        text += f"; runner-up {order[1]} {y['val_accuracy']:.4f}{tie}"
    final = state["rungs"][-1]
    if final["status"] == "done":
        b = final["runs"][winner]
        text += (f". Trained again as best for {b['train_seconds']:.0f}s: validation accuracy "
                 f"{b['val_accuracy']:.4f}" + (f", test accuracy {b['test_accuracy']:.4f}"
                                               if b.get("test_accuracy") is not None else ""))
    elif final.get("why"):
        text += f". {final['why']}"
    return text + "."



def _cell(x: dict | None) -> str:
    if not x:
        return "<td class='muted'>—</td>"
    if x.get("status") != "done":
        return f"<td title='{escape(str(x.get('error', '')))}'>failed</td>"
    return (f"<td class='n'>{x['val_accuracy']:.4f}<br><span class='muted'>{x.get('train_seconds') or 0:.0f}s, "
            f"{x.get('epochs')} ep</span></td>")


def _html(out: Path, state: dict, settings: dict) -> str:
    rungs, chosen = state["rungs"], state["chosen"]
    head = "".join(f"<th>rung {g['rung']}<br><span class='muted'>{g['size']} x {g['slot_seconds']:.0f}s"
                   f"{' (best)' if g is rungs[-1] else ''}</span></th>" for g in rungs)
    rows = []
    for c in state["candidates"]:
        mark = " style='font-weight:600'" if c["name"] == chosen["name"] else ""
        cells = "".join(_cell(g["runs"].get(c["name"])) for g in rungs)
        rows.append(f"<tr{mark}><td>{escape(c['name'])}</td><td>{escape(c['model'])}</td>"
                    f"<td>{escape(c['variant'])}</td>{cells}</tr>")
    ranks = "".join(f"<li>rung {g['rung']}: {escape(' > '.join(ranking(g)) or g.get('why', g['status']))}"
                    f"{escape(' (cut short: ' + g['cut'] + ')') if g.get('cut') else ''}</li>" for g in rungs)
    best_report = out / "best" / "report.html"
    link = f"<p><a href='best/report.html'>the best run's report</a></p>" if best_report.is_file() else ""
    facts = (f"<table class='kv'><tr><td>data</td><td>{escape(state['recipe'])} ({escape(state['modality'])})</td></tr>"
             f"<tr><td>budget</td><td>{state['budget_seconds']:.0f}s (margin {state['margin_seconds']:.0f}s)</td></tr>"
             f"<tr><td>time spent</td><td>{state['elapsed_seconds']:.0f}s in {state['sessions']} session(s)</td></tr>"
             f"<tr><td>eta</td><td>{state['eta']}: the top 1/{state['eta']} of each rung go on with "
             f"{state['eta']}x the time</td></tr></table>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>seehear auto — {escape(out.name)}</title>"
            f"<style>{CSS}</style></head><body><h1>seehear auto — {escape(out.resolve().name)}</h1>"
            f"<h2>AutoML: chosen</h2><p>{escape(state['why'])}</p>{link}{facts}"
            f"<h2>Candidates by rung</h2><p class='muted'>validation accuracy, training seconds and epochs of each "
            f"run; every run is a folder under candidates/ (the last rung's is best/)</p>"
            f"<table><tr><th>candidate</th><th>model</th><th>variant</th>{head}</tr>{''.join(rows)}</table>"
            f"<h2>Ranking</h2><ul>{ranks}</ul>"
            f"<h2>best.yaml</h2><pre>{escape(yaml.safe_dump(settings, sort_keys=False))}</pre></body></html>")

