"""Shared pytest fixtures."""

# --- models: a tiny real TFX run up to the Trainer (tests/fixtures_models.py) ---
from fixtures_models import trained_reviews_model, trained_taxi_model  # noqa: F401
# --- end models ---
