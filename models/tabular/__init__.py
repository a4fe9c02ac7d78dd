"""The generic tabular model: any CSV, described only by `model.features` in the config."""
