"""Compressor: prunes and quantizes the Trainer's model, and reports float vs compressed.

Import-free: `spec` (names, no TensorFlow), `component` (the TFX component) and
`executor` are imported by their own paths, so reading a name loads no TensorFlow.
"""
