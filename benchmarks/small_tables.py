"""Small tables benchmark: minimal configs on the tables every tutorial starts with.

Each table ships in an installed package (scikit-learn's iris, wine, breast cancer and
diabetes; palmerpenguins' penguins, twice: species and body mass). Each run's config
holds only a name, the data path, the family, the label and the features; everything
else is leanline's default. The pushed (compressed) model's eval metric, as the gate
measured it (TFMA), is set beside scikit-learn baselines fitted on the same train split
that ExampleGen wrote and scored on the same eval split: logistic (or ridge) regression
on standardized, one-hot, mean-imputed columns, and gradient boosting. Writes
benchmarks/results/small_tables.json and the small tables section of
benchmarks/README.md.

    .venv/bin/python -m benchmarks.small_tables [--work-dir DIR] [--tables iris wine ...]
"""

from __future__ import annotations

import argparse
import glob
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import accuracy_score, mean_absolute_error
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from benchmarks.provenance import measured_at, save_results, stamped
from benchmarks.readme import refresh as refresh_readmes
from pipeline.config import load_config, load_run_config
from pipeline.local_runner import run_local

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCHMARKS_DIR / "results" / "small_tables.json"
# Issue 25's targets: within 2 pt accuracy, or 10% MAE, of the better baseline.
MAX_POINTS_BELOW_BASELINE = 2.0
MAX_MAE_ABOVE_BASELINE = 0.10


@dataclass(frozen=True)
class Table:
    name: str
    kind: str  # binary, multiclass or regression
    frame: Callable[[], pd.DataFrame]
    label: str
    # Every other column is numeric.
    categorical: tuple[str, ...] = ()

    def numeric_columns(self, frame: pd.DataFrame) -> list[str]:
        return [c for c in frame.columns if c not in (self.label, *self.categorical)]


def _sklearn(loader: str, label: str, names: bool) -> Callable[[], pd.DataFrame]:
    def frame() -> pd.DataFrame:
        import sklearn.datasets

        data = getattr(sklearn.datasets, loader)(as_frame=True)
        table = data.frame.rename(columns=_column).rename(columns={"target": label})
        if names:
            table[label] = [str(data.target_names[i]) for i in data.target]
        return table

    return frame


def _column(name: str) -> str:
    return name.replace(" (cm)", "").replace(" ", "_").replace("/", "_")


def _penguins() -> pd.DataFrame:
    import palmerpenguins

    # As R and pandas export it: NA cells, integer columns with missing values.
    return palmerpenguins.load_penguins().drop(columns="year")


TABLES = {
    table.name: table
    for table in (
        Table("iris", "multiclass", _sklearn("load_iris", "species", True), "species"),
        Table("wine", "multiclass", _sklearn("load_wine", "cultivar", False), "cultivar"),
        Table(
            "breast_cancer",
            "binary",
            _sklearn("load_breast_cancer", "diagnosis", True),
            "diagnosis",
        ),
        Table(
            "diabetes", "regression", _sklearn("load_diabetes", "progression", False), "progression"
        ),
        Table("penguins", "multiclass", _penguins, "species", ("island", "sex")),
        Table(
            "penguin_mass",
            "regression",
            lambda: _penguins().dropna(subset=["body_mass_g"]),
            "body_mass_g",
            ("species", "island", "sex"),
        ),
    )
}


def minimal_config(table: Table, frame: pd.DataFrame, csv_path: Path) -> dict[str, Any]:
    """What a new user writes: name, data, family, label, features; nothing else."""
    label: dict[str, Any] = {"column": table.label}
    model: dict[str, Any] = {"family": "tabular", "label": label}
    if table.kind == "regression":
        model["task"] = "regression"
    model["features"] = {"numeric": table.numeric_columns(frame)}
    if table.categorical:
        model["features"]["categorical"] = list(table.categorical)
    return {"name": table.name.replace("_", "-"), "data": {"path": str(csv_path)}, "model": model}


def split_frame(output_dir: Path, split: str) -> pd.DataFrame:
    """One split as ExampleGen wrote it (missing values as NaN / None)."""
    runs = list((output_dir / "pipeline" / "CsvExampleGen" / "examples").iterdir())
    latest = max(runs, key=lambda path: int(path.name))
    rows = []
    for record in tf.data.TFRecordDataset(
        glob.glob(str(latest / f"Split-{split}" / "*")), compression_type="GZIP"
    ):
        row = {}
        for name, feature in tf.train.Example.FromString(record.numpy()).features.feature.items():
            kind = feature.WhichOneof("kind")
            values = list(getattr(feature, kind).value)
            value = values[0] if values else None
            row[name] = value.decode() if isinstance(value, bytes) else value
        rows.append(row)
    return pd.DataFrame(rows)


def baselines(table: Table, train: pd.DataFrame, eval_: pd.DataFrame) -> dict[str, float]:
    """Linear and gradient-boosted models on standardized, mean-imputed numbers and
    one-hot categories (a missing category is a category), and the trivial predictor."""
    numeric, categorical = table.numeric_columns(train), list(table.categorical)

    def columns(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[numeric + categorical].assign(
            **{name: frame[name].fillna("missing").astype(str) for name in categorical}
        )

    encoded = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(), StandardScaler()), numeric),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ],
        sparse_threshold=0,
    )
    y_train, y_eval = train[table.label], eval_[table.label]
    if table.kind == "regression":
        models = {
            "linear": RidgeCV(alphas=np.logspace(-3, 3, 13)),
            "gradient_boosting": HistGradientBoostingRegressor(random_state=0),
        }
        score = mean_absolute_error
        trivial = {"mean_predictor": np.full(len(y_eval), y_train.mean())}
    else:
        models = {
            "linear": LogisticRegression(max_iter=5000),
            "gradient_boosting": HistGradientBoostingClassifier(random_state=0),
        }
        score = accuracy_score
        trivial = {"majority_class": np.asarray([y_train.mode()[0]] * len(y_eval))}
    scores = {}
    for name, model in models.items():
        fitted = make_pipeline(encoded, model).fit(columns(train), y_train)
        scores[name] = float(score(y_eval, fitted.predict(columns(eval_))))
    return scores | {name: float(score(y_eval, values)) for name, values in trivial.items()}


def run_table(table: Table, work_dir: Path) -> dict[str, Any]:
    table_dir = work_dir / table.name
    table_dir.mkdir(parents=True, exist_ok=True)
    csv_path = table_dir / f"{table.name}.csv"
    frame = table.frame()
    frame.to_csv(csv_path, index=False)
    config_path = table_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(minimal_config(table, frame, csv_path), sort_keys=False))
    config = load_config(config_path).with_overrides(output_dir=str(table_dir / "output"))
    started = time.perf_counter()
    summary = run_local(config)
    seconds = time.perf_counter() - started
    output_dir = config.output_path
    # The run's own config: the classes and the metrics a local run fitted to the data.
    metric = load_run_config(output_dir).evaluation.thresholds.metric
    reference = baselines(table, split_frame(output_dir, "train"), split_frame(output_dir, "eval"))
    candidate = summary.eval_metrics.get("candidate", {}).get(metric)
    best = (min if table.kind == "regression" else max)(
        reference["linear"], reference["gradient_boosting"]
    )
    if candidate is None:
        met = False
    elif table.kind == "regression":
        met = candidate <= best * (1 + MAX_MAE_ABOVE_BASELINE)
    else:
        met = 100 * (best - candidate) <= MAX_POINTS_BELOW_BASELINE
    return {
        "table": table.name,
        "kind": table.kind,
        "rows": summary.rows,
        "metric": metric,
        "pushed": summary.pushed,
        "not_pushed_reason": summary.not_pushed_reason or summary.error,
        "leanline": candidate,
        "uncompressed": summary.eval_metrics.get("baseline", {}).get(metric),
        "baselines": reference,
        "recipe": summary.compression.get("compression_recipe"),
        "tflite_zipped_ratio": summary.compression.get("tflite_zipped_ratio"),
        "seconds": seconds,
        "component_seconds": {c.id: c.seconds for c in summary.components},
        "target_met": bool(summary.pushed and met),
    }


def _value(kind: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if kind == "regression" else f"{100 * value:.1f}%"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "Minimal configs (name, data, family, label, features); the pushed compressed "
        "model's eval metric (TFMA) against scikit-learn on the same split. Target: "
        f"pushed, within {MAX_POINTS_BELOW_BASELINE:g} pt accuracy (or "
        f"{100 * MAX_MAE_ABOVE_BASELINE:g}% MAE) of the better baseline.",
        "",
        "| table | rows train/eval | metric | leanline (shipped) | uncompressed | "
        "logistic/ridge | gradient boosting | majority/mean | recipe | run s | met |",
        "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for run in results["runs"]:
        kind, reference = run["kind"], run["baselines"]
        trivial = reference.get("majority_class", reference.get("mean_predictor"))
        metric = "MAE" if kind == "regression" else "accuracy"
        lines.append(
            f"| {run['table']} ({kind}) | {run['rows'].get('train')}/{run['rows'].get('eval')} | "
            f"{metric} | {_value(kind, run['leanline'])} | {_value(kind, run['uncompressed'])} | "
            f"{_value(kind, reference['linear'])} | {_value(kind, reference['gradient_boosting'])} | "
            f"{_value(kind, trivial)} | {run['recipe'] or '-'} | {run['seconds']:.0f} | "
            f"{'yes' if run['target_met'] else 'no: ' + (run['not_pushed_reason'] or 'below')} |"
        )
    return "\n".join([*lines, "", measured_at([("all tables", results)])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=list(TABLES))
    args = parser.parse_args()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="leanline-small-"))
    runs = [run_table(TABLES[name], work_dir) for name in args.tables]
    results = stamped({"runs": runs})
    save_results(results, RESULTS_FILE)
    refresh_readmes()
    print(markdown(results))
    print(f"work dir: {work_dir}; results: {os.path.relpath(RESULTS_FILE, BENCHMARKS_DIR.parent)}")


if __name__ == "__main__":
    main()
