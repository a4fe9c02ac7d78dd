"""The DataGate's contract: its input key and the file of ExampleValidator's it reads.
No TensorFlow or TFX import."""

ANOMALIES_KEY = "anomalies"
# ExampleValidator's anomalies, one per split directory.
ANOMALIES_FILE = "SchemaDiff.pb"
