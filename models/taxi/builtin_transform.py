"""Taxi's features are the tabular family's (only its label differs, which serving never
computes): the tabular builtin Transform serves it."""

from models.tabular.builtin_transform import builtin_transform

__all__ = ["builtin_transform"]
