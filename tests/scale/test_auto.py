"""seehear auto: successive halving over real training runs; rungs shrink by eta while each run's time grows by
eta; a search stopped after rung 0 continues without retraining; the winner is a run folder that predicts; bad
input is a one-line error."""
import json
import shutil
from pathlib import Path

import pytest
import yaml

from seehear.errors import ConfigError, DataError, RunError
from seehear.scale import candidates as cands
from seehear.scale.auto import MIN_RUN_SECONDS, auto, last_validation, margin

FAST = ["train.threads=1", "data.workers=1"]
BUDGET = 60.0


def test_rungs_shrink_by_eta_and_slots_grow_by_eta():
    assert cands.rung_sizes(9) == [9, 3, 1] and cands.rung_sizes(4) == [4, 1] and cands.rung_sizes(2) == [2, 1]
    s = cands.slots(900, [9, 3, 1])
    assert s[1] == pytest.approx(3 * s[0]) and s[2] == pytest.approx(3 * s[1])
    assert sum(n * x for n, x in zip([9, 3, 1], s)) == pytest.approx(900)  # the rungs together are the budget
    # the budget decides how many candidates rung 0 holds: each run at least min_run seconds
    assert cands.largest_fitting(900, 9, 6.0) == 9
    n = cands.largest_fitting(40, 9, 6.0)
    assert n == 3 and cands.slots(40, cands.rung_sizes(n))[0] >= 6.0
    assert cands.largest_fitting(20, 9, 6.0) is None
    for recipe in cands.FAMILIES:  # every candidate's settings are settings a run accepts
        from seehear.config import RunConfig

        for name, family, s in cands.all_candidates(recipe):
            RunConfig.from_dict({k: v for k, v in s.items() if k != "lr_factor"})
            assert name.startswith(family)


def test_ranking_breaks_ties_by_validation_loss_then_order():
    rung = {"candidates": ["a", "b", "c", "d"], "runs": {
        "a": {"status": "done", "val_accuracy": 0.9, "val_loss": 0.5},
        "b": {"status": "done", "val_accuracy": 0.9, "val_loss": 0.3},
        "c": {"status": "failed", "error": "RuntimeError: diverged"},
        "d": {"status": "done", "val_accuracy": 0.95, "val_loss": 0.9}}}
    assert cands.ranking(rung) == ["d", "b", "a"]  # a failed run never goes on


@pytest.mark.slow
def test_search_stops_after_rung_0_resumes_and_the_best_run_predicts(shapes_dir, tmp_path):
    out = tmp_path / "auto"
    first = auto(shapes_dir, out, budget=BUDGET, max_candidates=3, overrides=FAST, progress=False,
                 stop_after_rung=0)
    assert not first.finished and first.best_run is None and not (out / "best").exists()
    state = json.loads((out / "auto.json").read_text())
    r0, r1 = state["rungs"]
    assert r0["status"] == "done" and r1["status"] == "planned" and set(r0["runs"]) <= set(r0["candidates"])
    # all three ran, unless a busy machine made runs slower than planned: then those that did not fit never started
    assert len(r0["runs"]) == 3 or "not started" in r0["cut"]
    created = {c: json.loads((Path(x["run_dir"]) / "meta.json").read_text())["created"] for c, x in r0["runs"].items()}
    spent_first = state["elapsed_seconds"]

    r = auto(shapes_dir, out, budget=BUDGET, max_candidates=3, overrides=FAST, progress=False)
    assert r.finished and r.best_run == out / "best"
    state = json.loads((out / "auto.json").read_text())
    r0, r1 = state["rungs"]
    # rung structure: more candidates first than last, each run of the later rung given eta times the time
    assert r0["size"] == 3 and r1["size"] == 1 and len(r0["candidates"]) > len(r1["candidates"])
    assert r1["slot_seconds"] == pytest.approx(cands.ETA * r0["slot_seconds"], rel=0.01)
    assert r1["candidates"] == cands.ranking(r0)[:1]
    # rung 0 was not retrained: same run folders, same creation times
    for c, x in r0["runs"].items():
        assert json.loads((Path(x["run_dir"]) / "meta.json").read_text())["created"] == created[c]
    assert state["sessions"] == 2 and state["elapsed_seconds"] > spent_first
    # a budget is a limit: exactly so on the test-driven clock below; here, real runs on a busy 2-core machine
    # (another test worker beside this one) can overrun their measured overheads, hence the margin
    assert state["elapsed_seconds"] <= BUDGET * 1.5
    # chosen and why, with the numbers they came from
    chosen = state["chosen"]
    assert chosen["name"] == r.chosen == r1["candidates"][0]
    assert chosen["name"] in state["why"] and f"{r0['runs'][chosen['name']]['val_accuracy']:.4f}" in state["why"]
    assert last_validation(out / "best")[0] == pytest.approx(r.val_accuracy)
    # the best run is a normal run folder: it predicts
    from seehear.api import predict

    img = next(Path(shapes_dir).rglob("*.png"))
    rows = predict(out / "best", [img])
    assert rows[0]["label"] in {p.name for p in Path(shapes_dir).iterdir()}
    # best.yaml is a config that `seehear train --config` takes, with the winner's model and training time
    from seehear.recipes import user_settings

    best = user_settings(out / "best.yaml")
    cfg = yaml.safe_load((out / "best" / "config.yaml").read_text())
    assert best["train"]["time_budget"] == pytest.approx(cfg["train"]["time_budget"])
    assert cfg["model"]["name"] == next(c["model"] for c in state["candidates"] if c["name"] == r.chosen)
    html = (out / "report.html").read_text()
    assert "AutoML" in html and all(c in html for c in r0["candidates"])
    # the same command once more: nothing left to do, nothing retrained
    best_created = json.loads((out / "best" / "meta.json").read_text())["created"]
    again = auto(shapes_dir, out, budget=BUDGET, max_candidates=3, overrides=FAST, progress=False)
    assert again.chosen == r.chosen and again.finished
    assert json.loads((out / "best" / "meta.json").read_text())["created"] == best_created


def test_one_line_errors(shapes_dir, tmp_path):
    from seehear.cli import main

    with pytest.raises(ConfigError, match="too small for even one rung"):
        auto(shapes_dir, tmp_path / "a", budget=10, progress=False)
    assert main(["auto", str(shapes_dir), "--budget", "5s", "--out", str(tmp_path / "b")]) == 2
    need = MIN_RUN_SECONDS * 2 * 2
    assert need + margin(need) > 10  # the budget above is below the smallest search
    with pytest.raises(ConfigError, match="unknown candidate"):
        auto(shapes_dir, tmp_path / "c", budget=600, candidates=["fastnet", "nonesuch"], progress=False)
    with pytest.raises(ConfigError, match="picks the model family"):
        auto(shapes_dir, tmp_path / "d", budget=600, overrides=["model.name=resnet8"], progress=False)

    one = tmp_path / "one"
    shutil.copytree(next(p for p in Path(shapes_dir).iterdir() if p.is_dir()), one / "only")
    with pytest.raises(DataError, match="only one class"):
        auto(one, tmp_path / "e", budget=600, progress=False)

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RunError, match="cannot write to --out"):
        auto(shapes_dir, blocker / "sub", budget=600, progress=False)  # a file where a folder must be
    with pytest.raises(RunError, match="is a file"):
        auto(shapes_dir, blocker, budget=600, progress=False)

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(RunError, match="did not write"):
        auto(shapes_dir, mine, budget=600, progress=False)
    assert (mine / "notes.txt").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def _driven_clock(monkeypatch, outside: float) -> list:
    """auto's clock and runs replaced: each run takes `outside` seconds besides its training; returns the runs
    started as (folder name, training seconds)."""
    import seehear.scale.auto as auto_mod

    now = [1000.0]
    monkeypatch.setattr(auto_mod.time, "time", lambda: now[0])
    started = []

    def fake_run(data, run_dir, settings, train_for, task):
        started.append((run_dir.name, train_for))
        now[0] += outside + train_for
        run_dir.mkdir(parents=True)
        (run_dir / "meta.json").write_text("{}")
        acc = {"fastnet": 0.9, "resnet8": 0.8}.get(run_dir.name.split("-", 1)[-1], 0.5)
        return {"run_dir": str(run_dir), "time_budget": train_for, "status": "done", "epochs": 1,
                "wall_seconds": outside + train_for, "train_seconds": train_for, "val_accuracy": acc,
                "val_loss": 1.0, "test_accuracy": acc}

    monkeypatch.setattr(auto_mod, "_run", fake_run)
    return started


def test_a_budget_is_a_limit_when_runs_cost_more_than_planned(shapes_dir, tmp_path, monkeypatch):
    """Runs that spend 20 s outside training (a slow decoder, say) on a clock the test drives: rung 0 is cut to
    what fits in its share, rung 1 is skipped, the winner trains with what is left, and the total stays within
    the budget."""
    started = _driven_clock(monkeypatch, 20.0)
    r = auto(shapes_dir, tmp_path / "auto", budget=300, max_candidates=9, progress=False)
    state = json.loads((tmp_path / "auto" / "auto.json").read_text())
    sizes = [g["size"] for g in state["rungs"]]
    assert sizes[0] > sizes[-1] == 1
    r0 = state["rungs"][0]
    assert 1 <= len(r0["runs"]) < sizes[0] and "not started" in r0["cut"]  # cut: only what fits in its share
    usable = 300 - margin(300)
    assert sum(20.0 + t for _, t in started[:-1]) <= usable / len(sizes) + 1e-6  # rung 0 ended within its share
    assert state["rungs"][1]["status"] == "skipped"  # one candidate left: nothing to compare in rung 1
    assert [d for d, _ in started] == [f"r0-{c}" for c in r0["runs"]] + ["best"]
    assert r.finished and r.chosen == "fastnet"
    assert state["elapsed_seconds"] <= usable + 1e-6  # the whole search, the winner included, within the budget
    assert "cut short" in (tmp_path / "auto" / "report.html").read_text()


def test_no_time_left_for_the_winner_copies_its_run(shapes_dir, tmp_path, monkeypatch):
    started = _driven_clock(monkeypatch, 40.0)
    r = auto(shapes_dir, tmp_path / "auto", budget=100, progress=False)
    state = json.loads((tmp_path / "auto" / "auto.json").read_text())
    assert [d for d, _ in started] == ["r0-fastnet"]  # the winner's run was never started: it could not fit
    assert r.finished and r.chosen == "fastnet" and state["rungs"][-1]["status"] == "skipped"
    assert (tmp_path / "auto" / "best" / "meta.json").is_file() and "copy of r0-fastnet" in state["why"]
    assert state["elapsed_seconds"] <= 100 - margin(100)
