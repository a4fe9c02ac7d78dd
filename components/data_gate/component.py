"""DataGate component: ExampleValidator's anomalies in, a pass/fail decision out.

ExampleValidator only records anomalies; TFX runs everything downstream anyway.
Transform depends on this gate, so bad data stops the run before any training.
"""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ComponentSpec

from components.data_gate import executor
from components.data_gate.spec import ANOMALIES_KEY


class DataGateSpec(ComponentSpec):
    PARAMETERS = {}
    INPUTS = {ANOMALIES_KEY: ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
    OUTPUTS = {}


class DataGate(base_component.BaseComponent):
    """Fails the run, listing every anomaly, when the data does not match the schema."""

    SPEC_CLASS = DataGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, anomalies: types.BaseChannel):
        super().__init__(spec=DataGateSpec(anomalies=anomalies))
