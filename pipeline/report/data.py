"""Report sections on the data: statistics per split, anomalies, and the schema."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ml_metadata.proto import metadata_store_pb2
from tensorflow_data_validation.utils import stats_util
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx.components.schema_gen.executor import DEFAULT_FILE_NAME
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.data_gate.anomalies import describe_anomalies
from pipeline.layout import DATA_GATE, EXAMPLE_VALIDATOR, SCHEMA_PRODUCERS, STATISTICS_GEN
from pipeline.report.markup import Markup, bullets, heading, note, number, paragraph, percent, table
from pipeline.report.run import PipelineRun

_TOP_VALUES = 3
_DOMAIN_VALUES = 8


def split_names(artifact: metadata_store_pb2.Artifact) -> list[str]:

    return artifact_utils.decode_split_names(artifact.properties["split_names"].string_value)


def _missing_fraction(common: statistics_pb2.CommonStatistics, num_examples: int) -> float:
    """Examples without a value. An empty CSV cell gives a present feature with no values,
    which TFDV does not count as missing; for single-valued features it is the gap between
    present examples and values."""
    empty = common.num_non_missing - common.tot_num_values if common.max_num_values <= 1 else 0
    return (common.num_missing + empty) / num_examples if num_examples else 0.0


def _feature_row(feature: statistics_pb2.FeatureNameStatistics, num_examples: int) -> list[object]:
    kind = feature.WhichOneof("stats")
    stats = getattr(feature, kind)
    name = ".".join(feature.path.step) or feature.name
    type_name = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
    missing = percent(_missing_fraction(stats.common_stats, num_examples))
    if kind == "num_stats":
        return [
            name,
            type_name,
            missing,
            *map(number, (stats.mean, stats.std_dev, stats.min, stats.max)),
            "",
        ]
    values = ""  # bytes and struct features: only presence is summarized
    if kind == "string_stats":
        top = ", ".join(
            f"{v.value} ({number(int(v.frequency))})" for v in stats.top_values[:_TOP_VALUES]
        )
        values = f"{number(stats.unique)} distinct: {top}"
    return [name, type_name, missing, "-", "-", "-", "-", values]


def _split_statistics(split: str, path: str) -> Markup:

    dataset = stats_util.load_stats_binary(path).datasets[0]
    rows = [_feature_row(feature, dataset.num_examples) for feature in dataset.features]
    return Markup(
        heading(f"{split}: {number(dataset.num_examples)} rows")
        + table(
            ["feature", "type", "missing", "mean", "std dev", "min", "max", "values"],
            rows,
            align="llrrrrrl",
        )
    )


def _anomalies(run: PipelineRun) -> Markup:

    anomalies = run.artifact(EXAMPLE_VALIDATOR, "anomalies")
    if anomalies is None:
        return note("ExampleValidator did not run: no anomaly check.")
    problems = describe_anomalies(anomalies.uri, split_names(anomalies))
    if not problems:
        return note("No anomalies: every split matches the schema.", "ok")
    gate = run.components.get(DATA_GATE)
    stopped = " The data gate stopped the run." if gate and gate.status == "failed" else ""
    return Markup(note(f"{len(problems)} anomalies.{stopped}", "bad") + bullets(problems))


def data_section(run: PipelineRun | None) -> Markup:
    statistics = run.artifact(STATISTICS_GEN, "statistics") if run else None
    if statistics is None:
        return note("No statistics: StatisticsGen did not run.")
    parts = [
        paragraph("Missing counts examples without a value, empty CSV cells included."),
        *(
            _split_statistics(
                split, os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb")
            )
            for split in split_names(statistics)
        ),
        heading("Anomalies"),
        _anomalies(run),
    ]
    return Markup("".join(parts))


def _listed(values: Sequence[str]) -> str:
    more = len(values) - _DOMAIN_VALUES
    shown = ", ".join(values[:_DOMAIN_VALUES])
    return f"{shown}, … (+{more})" if more > 0 else shown


def _domain(feature: schema_pb2.Feature, schema: schema_pb2.Schema) -> str:
    match feature.WhichOneof("domain_info"):
        case "domain":  # the name of a schema-level string domain
            named = {domain.name: domain.value for domain in schema.string_domain}
            return _listed(named.get(feature.domain, []))
        case "string_domain":
            return _listed(feature.string_domain.value)
        case "int_domain" | "float_domain" as kind:
            domain = getattr(feature, kind)
            low = number(domain.min) if domain.HasField("min") else "-inf"
            high = number(domain.max) if domain.HasField("max") else "inf"
            return f"[{low}, {high}]"
        case None:
            return ""
        case kind:  # bool, struct, image, ...: named only
            return kind.removesuffix("_domain")


def _presence(feature: schema_pb2.Feature) -> str:
    presence = feature.presence
    if presence.min_fraction >= 1:
        return "required"
    return f"optional (≥ {percent(presence.min_fraction)})" if presence.min_fraction else "optional"


def _valency(feature: schema_pb2.Feature) -> str:
    if feature.HasField("shape"):
        return "×".join(str(d.size) for d in feature.shape.dim) or "scalar"
    if feature.HasField("value_count"):
        low, high = feature.value_count.min, feature.value_count.max
        return str(low) if low == high else f"{low}..{high or 'any'}"
    return "any"


def _schema_artifact(run: PipelineRun) -> metadata_store_pb2.Artifact | None:
    return next((a for c in SCHEMA_PRODUCERS if (a := run.artifact(c, "schema")) is not None), None)


def schema_section(run: PipelineRun | None) -> Markup:
    artifact = _schema_artifact(run) if run else None
    if artifact is None:
        return note("No schema: the schema component did not run.")

    schema = io_utils.SchemaReader().read(os.path.join(artifact.uri, DEFAULT_FILE_NAME))
    rows = [
        [
            feature.name,
            schema_pb2.FeatureType.Name(feature.type),
            _presence(feature),
            _valency(feature),
            _domain(feature, schema),
        ]
        for feature in schema.feature
    ]
    return table(
        ["feature", "type", "presence", "values per example", "domain"], rows, align="lllll"
    )
