"""Chicago taxi: the tabular model with taxi's own label, "tip above 20% of the fare"."""
