"""report.html's Trust section from trust.json alone: shown at a glance, escaped, and tolerant of missing parts."""
import json

from seehear.evaluation.report import write_report


def test_trust_section_renders_and_escapes(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"labels": ["a", "b"], "modality": "image"}))
    trust = {
        "measured_on": "the run's test split", "n": 40, "accuracy": 0.9,
        "calibration": {"temperature": 1.7, "test": {"ece_before": 0.12, "ece_after": 0.02}},
        "adversarial": {"unit": "eps_pixels", "clean_accuracy": 0.9,
                        "results": [{"attack": "pgd", "eps_pixels": 8.0, "accuracy": 0.25}]},
        "fairness": {"column": "site", "accuracy": {
            "worst_group": "<script>x</script>", "worst": 0.5, "gap": 0.4, "note": "1 group(s) under 10 items",
            "per_group": {"<script>x</script>": {"accuracy": 0.5, "n": 4},
                          "north": {"accuracy": 0.9, "n": 36, "ci95": [0.8, 0.97]}}}},
        "label_issues": {"method": "cleanlab", "listed": [{"file": "f<1>.png", "given": "a", "predicted": "b",
                                                          "p_given": 0.01}]},
    }
    (tmp_path / "trust.json").write_text(json.dumps(trust))
    html = write_report(tmp_path).read_text()
    assert "<h2>Trust</h2>" in html
    assert "0.120 → 0.020" in html and "T = 1.70" in html and "ε 8/255" in html and "25.0%" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "f&lt;1&gt;.png" in html
    assert "too few" in html and "80.0%–97.0%" in html


def test_no_trust_json_no_section(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"labels": ["a"]}))
    assert "Trust" not in write_report(tmp_path).read_text()


def test_fairness_by_speaker_clusters_is_said_and_counted(tmp_path):
    (tmp_path / "meta.json").write_text(json.dumps({"labels": ["a", "b"], "modality": "audio"}))
    from seehear.trust.fairness import fairness_report

    y = [0] * 40
    pred = [0] * 30 + [1] * 10
    fair = fairness_report(y, pred, ["f"] * 20 + ["m"] * 20, "gender", n_boot=200,
                           clusters=[f"s{i // 5}" for i in range(40)])
    (tmp_path / "trust.json").write_text(json.dumps({"n": 40, "accuracy": 0.75, "fairness": fair}))
    html = write_report(tmp_path).read_text()
    assert "cluster bootstrap" in html and "<th>speakers</th>" in html
