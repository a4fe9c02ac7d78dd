"""DataGate executor: reads each split's anomalies and raises a readable error."""

from __future__ import annotations

import os
from typing import Any

from tensorflow_data_validation.utils import anomalies_util
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from pipeline.errors import UserError

ANOMALIES_FILE = "SchemaDiff.pb"


class DataValidationError(UserError):
    """The examples do not match the schema."""


def describe_anomalies(anomalies_uri: str, split_names: list[str]) -> list[str]:
    """One line per anomaly: `split: feature: short description (description)`."""
    lines = []
    for split in split_names:
        path = os.path.join(anomalies_uri, f"Split-{split}", ANOMALIES_FILE)
        anomalies = anomalies_util.load_anomalies_binary(path)
        for feature, info in sorted(anomalies.anomaly_info.items()):
            reasons = "; ".join(r.short_description for r in info.reason) or info.short_description
            lines.append(f"{split}: column {feature!r}: {reasons} ({info.description})")
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            lines.append(f"{split}: whole dataset: {info.short_description} ({info.description})")
    return lines


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        anomalies = artifact_utils.get_single_instance(input_dict["anomalies"])
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
