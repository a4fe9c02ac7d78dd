"""ServingPusher: publishes a blessed compressed model as a new TF Serving version.

Import-free: `spec` (names, no TensorFlow), `component` (the TFX component) and
`executor` are imported by their own paths, so reading a name loads no TensorFlow.
"""
