"""Code every model family shares: config parsing, strategies, input data, training, export."""
