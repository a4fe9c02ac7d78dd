"""A run's input: the pre-flight checks (pure), the copies ExampleGen reads, the bundled
datasets and the inferred schema."""
