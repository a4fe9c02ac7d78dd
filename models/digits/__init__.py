"""Handwritten 8x8 digits (scikit-learn): a small, prunable CNN."""
