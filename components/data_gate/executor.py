"""DataGate executor: reads each split's anomalies and raises a readable error."""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.data_gate.anomalies import describe_anomalies
from components.data_gate.spec import ANOMALIES_KEY
from models.errors import UserError


class DataValidationError(UserError):
    """The examples do not match the schema."""


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        anomalies = artifact_utils.get_single_instance(input_dict[ANOMALIES_KEY])
        splits = artifact_utils.decode_split_names(anomalies.split_names)
        problems = describe_anomalies(anomalies.uri, splits)
        if problems:
            listing = "\n  ".join(problems)
            raise DataValidationError(
                f"the data does not match the schema; nothing downstream ran and nothing was pushed.\n"
                f"  {listing}\n"
                f"Anomalies artifact: {anomalies.uri}\n"
                "Fix the data, or update the curated schema if the change is intended "
                "(`leanline schema` writes the inferred one)."
            )
