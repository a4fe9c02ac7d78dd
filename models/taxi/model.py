"""Taxi trains the tabular network unchanged; only its label (preprocessing) differs.

`run_fn` is re-exported so the pipeline can name `models.taxi.model.run_fn` like
every other family's.
"""

from models.tabular.model import build_model, run_fn

__all__ = ["build_model", "run_fn"]
