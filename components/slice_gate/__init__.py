"""SliceGate: the compression gate's verdict on each large enough slice.

Import-free: `spec` (names, no TensorFlow), `component` (the TFX component) and
`executor` are imported by their own paths, so reading a name loads no TensorFlow.
"""
