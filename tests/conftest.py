"""Shared pytest fixtures, and the slow marker of every test that uses a pipeline fixture."""

import pytest

# --- models: a tiny real TFX run up to the Trainer (tests/fixtures_models.py) ---
from fixtures_models import (  # noqa: F401
    PIPELINE_FIXTURES,
    trained_penguins_model,
    trained_reviews_model,
    trained_taxi_model,
)

# --- end models ---


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a session fixture running a TFX pipeline is slow, whichever
    fixtures lie between them (`version_dir` -> `pushed` -> `model_artifacts` ->
    `trained_taxi_model`): the first such test of a session pays for the run, and a
    marker written by hand on each would be missed on the next fixture chain."""
    for item in items:
        if PIPELINE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
