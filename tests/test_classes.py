"""Class names: a minimal config takes its classes from the data, ids stay put when class
frequencies change, unknown labels are refused, and served answers name the classes.

Data are small CSV tables written by the tests; the runs are real: TFT's Transform on
two data versions, the penguins model of tests/fixtures_models.py behind the TF Serving
test double, and one whole run of a minimal config (slow).
"""

from __future__ import annotations

import csv
import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from fixtures_models import TinyTrainedModel, csv_rows
from tf_serving_double import serve_models

from models.common.data import label_counts
from models.common.features import class_names
from models.config import LabelConfig
from models.errors import UserError
from models.tabular.preprocessing import class_ids
from pipeline import cli
from pipeline.classes import fit_classes
from pipeline.config import (
    DEFAULT_METRICS,
    ConfigError,
    load_config,
    load_run_config,
    write_run_config,
)
from pipeline.inputs.checks import InputDataError, check_inputs
from serving import client

ANIMALS = ["bird", "cat", "dog"]  # sorted: the ids 0, 1, 2
MINIMAL_CONFIG = """
    name: animals
    data: {path: animals.csv}
    model:
      family: tabular
      features: {numeric: [weight]}
      label: {column: animal%s}
"""


def write_table(path: Path, labels: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["weight", "animal"])
        writer.writerows([[round(0.5 + 0.1 * i, 2), label] for i, label in enumerate(labels)])
    return path


def minimal_config(directory: Path, labels: list[str], label_keys: str = "", extra: str = ""):
    """The minimal YAML of a tabular classifier on `labels`, loaded as `leanline run` does."""
    write_table(directory / "animals.csv", labels)
    path = directory / "animals.yaml"
    path.write_text(textwrap.dedent(MINIMAL_CONFIG % label_keys) + textwrap.dedent(extra))
    return load_config(path)


def fitted(config):
    checked = check_inputs(config, config.resolve(config.data.path))
    return fit_classes(config, checked.label_values)


def test_a_minimal_config_takes_sorted_classes_and_their_metrics_from_the_data(tmp_path):
    config = minimal_config(tmp_path, ["dog", "cat", "dog", "bird", "cat", "dog"])
    assert config.model.label.num_classes == 2  # unset: binary until the data says more
    # As `leanline run --output-dir` does before pre-flight: the copy keeps what was unset.
    config = config.with_overrides(output_dir=str(tmp_path / "output"))

    classes = fitted(config)
    label = classes.config.model.label
    assert (label.classes, label.num_classes) == (ANIMALS, 3)
    metrics, gated = DEFAULT_METRICS["multiclass"]
    assert classes.config.evaluation.metrics == metrics
    assert classes.config.evaluation.thresholds.metric == gated
    assert classes.notes == (
        "model.label.classes unset: the classes of 'animal' are its values sorted, ids "
        "0 bird, 1 cat, 2 dog (recorded in leanline.yaml; list them in the config to keep "
        "these ids when a class is missing from new data)",
    )

    # The run's saved config records them, for `report`, `serving-config` and the rest.
    saved = load_run_config(write_run_config(classes.config, tmp_path).parent)
    assert saved.model.label == label
    assert saved.evaluation.metrics == metrics


def test_metrics_the_config_names_are_kept_when_the_classes_come_from_the_data(tmp_path):
    named = """
        evaluation:
          metrics: [SparseCategoricalAccuracy, SparseTopKCategoricalAccuracy]
    """
    config = minimal_config(tmp_path, ["dog", "cat", "bird"], extra=named)
    fitted_config = fitted(config).config
    assert fitted_config.model.label.classes == ANIMALS
    assert fitted_config.evaluation.metrics == [
        "SparseCategoricalAccuracy",
        "SparseTopKCategoricalAccuracy",
    ]
    # The gated metric was left unset: picked for three classes.
    assert fitted_config.evaluation.thresholds.metric == "sparse_categorical_accuracy"


@pytest.mark.parametrize(
    ("labels", "num_classes", "kind"),
    [(["0", "2", "1", "3", "2"], 4, "multiclass"), (["1", "0", "TRUE", "1.0"], 2, "binary")],
)
def test_an_integer_labels_classes_are_its_ids_up_to_the_largest(
    tmp_path, labels, num_classes, kind
):
    config = fitted(minimal_config(tmp_path, labels)).config
    assert config.model.label.num_classes == num_classes
    assert config.model.label.classes is None  # served as "0", "1", ...
    assert config.evaluation.metrics == DEFAULT_METRICS[kind][0]


@pytest.mark.parametrize(
    ("labels", "unused"),
    [
        (["151.0", "75.0", "141.0"], "ids 0, 1, 2, 3, 4 and 144 more have no row"),
        (["1", "2"], "ids 0 have no row"),
    ],
)
def test_integers_that_are_no_class_ids_0_to_n_are_refused_naming_regression(
    tmp_path, labels, unused
):
    """A number to predict left without `task: regression` (pandas writes `151.0`), or
    ids from 1: not a model with empty classes."""
    with pytest.raises(InputDataError) as refused:
        fitted(minimal_config(tmp_path, labels))
    message = str(refused.value)
    assert unused in message and "set model.task: regression" in message


def test_a_marker_in_a_label_of_class_ids_is_a_missing_label_and_a_name_among_names(tmp_path):
    with pytest.raises(InputDataError, match=r"line 4 has 'NA' \(1 row like this\)"):
        fitted(minimal_config(tmp_path, ["0", "1", "NA", "1"]))
    # Among names, NA (North America) is a class like any other.
    config = fitted(minimal_config(tmp_path, ["EU", "NA", "EU"])).config
    assert config.model.label.classes == ["EU", "NA"]


def test_labels_outside_the_listed_classes_are_refused_with_counts_and_first_lines(tmp_path):
    labels = ["cat", "dog", "bird", "cat", "bird", "cow"]  # data lines 2 to 7
    config = minimal_config(tmp_path, labels, ", classes: [cat, dog]")
    with pytest.raises(InputDataError) as refused:
        fitted(config)
    assert (
        f"{tmp_path / 'animals.csv'}: column 'animal' holds values that model.label.classes "
        "['cat', 'dog'] does not list: 'bird' (2 rows, first line 4), 'cow' (1 row, first "
        "line 7); add them to the list, or fix or delete those rows"
    ) in str(refused.value)

    # An integer label's classes name its ids: an id past them is refused too.
    config = minimal_config(tmp_path, ["0", "1", "2", "1", "2"], ", classes: ['no', 'yes']")
    with pytest.raises(
        InputDataError, match=r"class ids outside \[0, 2\).*'2' \(2 rows, first line 4\)"
    ):
        fitted(config)


def test_a_class_count_the_data_contradicts_is_refused(tmp_path):
    config = minimal_config(tmp_path, ["dog", "cat", "bird"], ", num_classes: 2")
    with pytest.raises(
        InputDataError,
        match=r"num_classes is 2, but label column 'animal' holds 3 classes: 'bird' \(1 rows\)",
    ):
        fitted(config)


@pytest.mark.parametrize(
    ("label_keys", "message"),
    [
        (
            ", classes: [cat, dog, cat]",
            "classes ['cat', 'dog', 'cat']: each class needs a name of its own (repeated: 'cat')",
        ),
        (", classes: [cat, dog], num_classes: 3", "num_classes is 3 but classes names 2"),
        (", classes: [no, yes]", "classes [False, True]: YAML reads unquoted yes, no"),
    ],
)
def test_bad_class_lists_are_refused_naming_the_file_and_key(tmp_path, label_keys, message):
    with pytest.raises(ConfigError) as refused:
        minimal_config(tmp_path, ["cat"], label_keys)
    assert str(refused.value).startswith(f"{tmp_path / 'animals.yaml'}: invalid configuration")
    assert f"model.label: {message}" in str(refused.value)


def test_transform_maps_listed_classes_by_position_and_refuses_strings_without_a_list():
    labels = tf.constant(["dog", "cat", "cow", "bird"])
    ids = class_ids(labels, LabelConfig(column="animal", classes=ANIMALS))
    # An unlisted value is -1, which the Trainer's label check refuses with the counts.
    assert ids.numpy().tolist() == [2, 1, -1, 0]
    # TFRecord input and Kubeflow runs have no pre-flight to list the classes.
    with pytest.raises(UserError, match="holds strings, and model.label.classes does not list"):
        class_ids(labels, LabelConfig(column="animal"))


def _transform(config, data: Path, work_dir: Path) -> str:
    """ExampleGen through Transform of the pipeline's own stages; the transform graph URI."""
    from pipeline.local_runner import run_components
    from pipeline.pipeline import training_stages

    stages = training_stages(config, str(data))
    components = [stages.example_gen, stages.statistics_gen, stages.schema_gen, stages.transform]
    root = run_components("classes", work_dir, components, config.beam_pipeline_args)
    (graph,) = (root / "Transform" / "transform_graph").iterdir()
    return str(graph)


@pytest.mark.slow
def test_class_ids_stay_put_when_the_class_frequencies_flip(tmp_path):
    """Two data versions, most frequent class first in one and last in the other (TFT's
    vocabulary order swapped their ids): the same ids, and the same names recorded."""
    versions = {
        "v1": 12 * ["cat"] + 6 * ["dog"] + 2 * ["bird"],
        "v2": 2 * ["cat"] + 6 * ["dog"] + 12 * ["bird"],
    }
    for version, labels in versions.items():
        config = fitted(minimal_config(tmp_path / version, labels)).config
        assert config.model.label.classes == ANIMALS
        graph = _transform(config, tmp_path / version / "animals.csv", tmp_path / version / "run")
        examples = Path(graph).parents[1] / "transformed_examples" / Path(graph).name
        counts = label_counts(str(examples / "Split-*" / "*"))
        assert counts == {ANIMALS.index(name): labels.count(name) for name in ANIMALS}
        assert class_names(tft.TFTransformOutput(graph)) == ANIMALS


@pytest.mark.parametrize("transport", ["grpc", "rest"])
def test_predict_prints_the_served_class_names(
    trained_penguins_model: TinyTrainedModel, tmp_path, capsys, transport
):
    base = tmp_path / "serving" / "penguins"
    shutil.copytree(Path(trained_penguins_model.model_uri) / "Format-Serving", base / "1")
    features = trained_penguins_model.config.model.features.all_columns()
    rows = [{c: row[c] for c in features} for row in csv_rows(trained_penguins_model.csv_path)]
    rows = rows[::100]  # one row of each species, and one more
    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text("".join(json.dumps(row) + "\n" for row in rows))
    species = ["Adelie", "Chinstrap", "Gentoo"]

    # TEST DOUBLE of TF Serving (the model server cannot be installed here).
    with serve_models({"penguins": base}) as server:
        address = server.grpc if transport == "grpc" else server.rest
        argv = ["predict", "--server", address, "--model", "penguins", f"--{transport}"]
        assert cli.main([*argv, "--input", str(rows_file)]) == 0
        table = capsys.readouterr().out
        assert cli.main([*argv, "--input", str(rows_file), "--json"]) == 0
        records = json.loads(capsys.readouterr().out)
        signatures = server.models.get("penguins").signature_defs.signature_def
    kinds = client.feature_kinds_from_signatures(signatures, "penguins")
    model = tf.saved_model.load(str(base / "1")).signatures["serving_default"]
    expected = model(examples=tf.constant(client.rows_to_examples(rows, kinds)))["outputs"]

    header, *lines = table.strip().splitlines()
    assert header.split() == ["row", "class", *(f"p({name})" for name in species)]
    most_likely = [species[j] for j in expected.numpy().argmax(axis=1)]
    assert [line.split()[1] for line in lines] == most_likely
    for line, probabilities in zip(lines, expected.numpy(), strict=True):
        np.testing.assert_allclose([float(p) for p in line.split()[2:]], probabilities, atol=1e-6)
    assert [record["class"] for record in records] == most_likely
    assert all(list(record["probabilities"]) == species for record in records)


def _species_table(path: Path, rows: int) -> Path:
    """Three animals told apart by weight and height, most of them cats."""
    generator = np.random.default_rng(7)
    centres = {"bird": (0.5, 0.2), "cat": (4.0, 0.3), "dog": (20.0, 0.6)}
    names = generator.choice(ANIMALS, size=rows, p=[0.2, 0.5, 0.3])
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["weight", "height", "animal"])
        for name in names:
            weight, height = centres[name]
            writer.writerow(
                [round(generator.normal(weight, weight / 4), 3), round(height, 2), name]
            )
    return path


@pytest.mark.slow
def test_a_minimal_config_of_named_classes_runs_and_serves_the_names(tmp_path):
    """`label: {column: animal}` and nothing about classes: the run takes the three
    names from the data, the gates judge the SavedModels (TFMA reads `outputs` beside
    the `classes` output), and the pushed version, its saved config and the report
    name the classes."""
    from pipeline.local_runner import run_local
    from pipeline.summary import SAVED_MODEL_FORMAT

    _species_table(tmp_path / "animals.csv", 600)
    (tmp_path / "animals.yaml").write_text(
        textwrap.dedent(
            """
            name: animals
            data: {path: animals.csv}
            model:
              family: tabular
              features: {numeric: [weight, height]}
              label: {column: animal}
            compression: {enabled: false}
            """
        )
    )
    config = load_config(tmp_path / "animals.yaml").with_overrides(
        output_dir=str(tmp_path / "output")
    )

    summary = run_local(config)

    assert summary.pushed, summary.not_pushed_reason or summary.error
    assert summary.gated_format == SAVED_MODEL_FORMAT
    assert summary.blessings == {"EvaluateCompression": True, "EvaluateVsBlessed": True}
    saved = load_run_config(config.output_path)
    assert (saved.model.label.classes, saved.model.label.num_classes) == (ANIMALS, 3)
    assert saved.evaluation.thresholds.metric == "sparse_categorical_accuracy"
    version_dir = config.serving_model_dir / summary.pushed_version
    rows = [{"weight": "0.4", "height": "0.2"}, {"weight": "22", "height": "0.6"}]
    kinds = {"weight": "float", "height": "float"}
    served = tf.saved_model.load(str(version_dir)).signatures["serving_default"](
        examples=tf.constant(client.rows_to_examples(rows, kinds))
    )
    assert served["classes"].numpy().astype(str).tolist() == [ANIMALS, ANIMALS]
    assert served["outputs"].numpy().argmax(axis=1).tolist() == [0, 2]  # a bird, a dog
    assert "0 bird, 1 cat, 2 dog" in (config.output_path / "report.html").read_text()
