"""Shared pytest fixtures."""

# --- models: a tiny real TFX run up to the Trainer (tests/fixtures_models.py) ---
from fixtures_models import (  # noqa: F401
    trained_penguins_model,
    trained_reviews_model,
    trained_taxi_model,
)
# --- end models ---
