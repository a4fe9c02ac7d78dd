"""DataGate: stops the pipeline when ExampleValidator found anomalies."""

from components.data_gate.component import DataGate
from components.data_gate.executor import DataValidationError

__all__ = ["DataGate", "DataValidationError"]
