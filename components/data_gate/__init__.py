"""DataGate: stops the pipeline when ExampleValidator found anomalies.

Import-free: `spec` (names, no TensorFlow), `component` (the TFX component) and
`executor` are imported by their own paths, so reading a name loads no TensorFlow.
"""
