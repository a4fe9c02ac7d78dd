"""ExampleValidator's anomalies in words: what the DataGate raises and the report lists."""

from __future__ import annotations

import os

from tensorflow_data_validation.utils import anomalies_util

from components.data_gate.spec import ANOMALIES_FILE


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
