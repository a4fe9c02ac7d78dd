"""Free text (Rotten Tomatoes reviews, bundled): a small Transformer encoder over token ids."""
