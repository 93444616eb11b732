"""Evaluation: metrics (metrics.json), PNG plots and the self-contained report.html of a run.

Importing this package loads scikit-learn but not matplotlib; the plotting functions import it on first use,
so `predict` and metric-only callers do not pay for it.
"""
from __future__ import annotations

from seehear.evaluation.metrics import compute_metrics, expected_calibration_error, format_metrics, predictions_table

__all__ = ["compute_metrics", "expected_calibration_error", "format_metrics", "predictions_table",
           "plot_confusion", "plot_curves", "plot_reliability", "write_report"]


def __getattr__(name):
    if name in {"plot_confusion", "plot_curves", "plot_reliability"}:
        from seehear.evaluation import plots

        return getattr(plots, name)
    if name == "write_report":
        from seehear.evaluation.report import write_report

        return write_report
    raise AttributeError(name)
