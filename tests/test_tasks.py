"""Regression and users' own model modules: configs, gates, label checks and module
loading, checked without a pipeline run (the runs are in test_pipeline.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tensorflow_model_analysis.proto import config_pb2

from models.common.data import LabelStats
from models.common.train import check_regression_label
from models.custom.loader import ModelModuleError, check_module, module_function
from pipeline import cli
from pipeline.config import ConfigError, custom_config, load_config
from pipeline.evaluation import eval_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


def _config_file(tmp_path: Path, base: str, **sections) -> Path:
    raw = yaml.safe_load((CONFIGS / f"{base}.yaml").read_text())
    raw["data"].pop("schema", None)
    for key, value in sections.items():
        raw[key] = value
    path = tmp_path / "leanline.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_taxi_fare_is_a_regression_without_leaking_the_fare():
    config = load_config(CONFIGS / "taxi_fare.yaml")
    assert config.model.is_regression and config.label_key == "fare"
    # What the fare decides, or what is known only from it, is no feature.
    assert not {"tips", "fare", "payment_type"} & set(config.model.features.all_columns())
    assert config.evaluation.thresholds.lower_is_better
    assert config.evaluation.thresholds.vs_uncompressed == ("relative", 0.05)


def test_a_regression_gate_is_lower_is_better_and_relative():
    config = load_config(CONFIGS / "taxi_fare.yaml").with_overrides(
        evaluation={"thresholds": {"max_value": 4.0, "max_increase_vs_blessed": 0.1}}
    )
    thresholds = config.evaluation.thresholds
    spec = eval_config(config.evaluation, thresholds.vs_blessed)
    (gated,) = [m for m in spec.metrics_specs[0].metrics if m.class_name == "MeanAbsoluteError"]
    threshold = gated.per_slice_thresholds[0].threshold
    assert threshold.change_threshold.direction == config_pb2.MetricDirection.LOWER_IS_BETTER
    assert threshold.change_threshold.relative.value == pytest.approx(0.1)
    assert not threshold.change_threshold.HasField("absolute")
    assert threshold.value_threshold.upper_bound.value == 4.0
    assert not threshold.value_threshold.HasField("lower_bound")


def test_a_classifier_gate_keeps_its_floor_and_absolute_drop():
    config = load_config(CONFIGS / "taxi.yaml")
    spec = eval_config(config.evaluation, config.evaluation.thresholds.vs_uncompressed)
    (gated,) = [m for m in spec.metrics_specs[0].metrics if m.per_slice_thresholds]
    threshold = gated.per_slice_thresholds[0].threshold
    assert threshold.change_threshold.direction == config_pb2.MetricDirection.HIGHER_IS_BETTER
    assert threshold.change_threshold.absolute.value == pytest.approx(-0.005)
    assert threshold.value_threshold.lower_bound.value == 0.6


@pytest.mark.parametrize(
    ("model", "evaluation", "expected"),
    [
        (
            {"task": "regression"},
            {"metrics": ["BinaryAccuracy"], "thresholds": {"metric": "binary_accuracy"}},
            "a regression model is gated on an error",
        ),
        (
            {"task": "regression"},
            {"thresholds": {"max_drop_vs_uncompressed": 0.1}},
            "max_drop_vs_uncompressed cannot bound 'mean_absolute_error', for which lower is better",
        ),
        (
            {},
            {"thresholds": {"max_increase_vs_blessed": 0.1}},
            "max_increase_vs_blessed cannot bound 'binary_accuracy', for which higher is better",
        ),
        (
            {"task": "regression", "label": {"column": "fare", "num_classes": 3}},
            {},
            "label.num_classes is for classification",
        ),  # fmt: skip
        ({"family": "digits", "task": "regression"}, {}, "model family 'digits' is a classifier"),
        ({"module": "mine.py"}, {}, "set exactly one of `family`"),
        ({"family": None, "module": "not a module"}, {}, "neither a .py file nor a dotted"),
        ({"family": None, "module": "missing.py"}, {}, "model.module: path does not exist"),
    ],
)
def test_task_and_module_mistakes_name_the_key(tmp_path, model, evaluation, expected):
    raw = yaml.safe_load((CONFIGS / "taxi_fare.yaml").read_text())
    raw["data"].pop("schema")
    raw["model"] = {**raw["model"], "task": "classification", "label": {"column": "fare"}, **model}
    if "task" not in model:
        raw["model"]["label"] = {"column": "tips"}
    raw["evaluation"] = evaluation
    path = tmp_path / "leanline.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).startswith(f"{path}: invalid configuration")
    assert expected in str(error.value)


def test_metrics_default_to_the_task(tmp_path):
    raw = yaml.safe_load((CONFIGS / "taxi_fare.yaml").read_text())
    raw["data"].pop("schema")
    del raw["evaluation"]
    path = tmp_path / "leanline.yaml"
    path.write_text(yaml.safe_dump(raw))
    evaluation = load_config(path).evaluation
    assert evaluation.metrics == ["MeanSquaredError", "MeanAbsoluteError", "ExampleCount"]
    assert evaluation.thresholds.metric == "mean_absolute_error"
    raw = yaml.safe_load((CONFIGS / "penguins.yaml").read_text())
    del raw["evaluation"]
    path.write_text(yaml.safe_dump(raw))
    assert load_config(path).evaluation.thresholds.metric == "sparse_categorical_accuracy"


def _stats(**changes) -> LabelStats:
    values = {"rows": 100, "non_finite": 0, "mean": 12.0, "std": 3.0, "min": 2.0, "max": 40.0}
    return LabelStats(**{**values, **changes})


@pytest.mark.parametrize(
    ("train", "eval_", "expected"),
    [
        (_stats(non_finite=3), _stats(), "holds values that are not finite"),
        (_stats(), _stats(non_finite=1), "holds values that are not finite"),
        (_stats(std=0.0, min=5.0, max=5.0), _stats(), "one value for every train row"),
    ],
)
def test_a_regression_label_that_cannot_be_learned_is_refused_with_its_figures(
    train, eval_, expected
):
    model = load_config(CONFIGS / "taxi_fare.yaml").model
    with pytest.raises(Exception, match=expected) as error:
        check_regression_label(train, eval_, model)
    assert "'fare'" in str(error.value) and "train: 100 rows" in str(error.value)


MODULE = """
def preprocessing_fn(inputs, custom_config):
    return {}


def build_model(inputs, model_config):
    return None
"""


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (MODULE.replace("def build_model", "def build"), "defines no build_model; expected build_model(inputs, model_config)"),
        (MODULE.replace("(inputs, custom_config)", "(inputs)"), "preprocessing_fn(inputs) cannot be called with two arguments"),
        ("import not_installed_anywhere\n" + MODULE, "importing it failed (MODULE, line 1): ModuleNotFoundError"),
        (MODULE + "\ndef broken(:\n", "importing it failed"),
        (MODULE + "\nbuild_model = 3\n", "build_model is not a function"),
    ],
    ids=["missing_function", "wrong_arguments", "import_error", "syntax_error", "not_callable"],
)  # fmt: skip
def test_module_mistakes_name_the_file_and_the_function(tmp_path, source, expected):
    path = tmp_path / "broken_model.py"
    path.write_text(source)
    with pytest.raises(ModelModuleError) as error:
        check_module(str(path))
    message = str(error.value)
    assert message.startswith(f"model.module {path}: ")
    assert expected.replace("MODULE", str(path)) in message


def test_a_module_is_named_by_file_or_by_dotted_name(tmp_path, monkeypatch):
    path = tmp_path / "good_model.py"
    path.write_text(MODULE)
    assert module_function(str(path), "build_model")(None, None) is None
    package = tmp_path / "team_models"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "churn.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    check_module("team_models.churn")
    with pytest.raises(ModelModuleError, match="no module named 'nowhere_to_be_found'"):
        check_module("nowhere_to_be_found.model")
    # An edited file is loaded again: modules are keyed by content.
    path.write_text(MODULE.replace("return None", "return 'edited'"))
    assert module_function(str(path), "build_model")(None, None) == "edited"


def test_a_run_with_a_broken_module_stops_before_any_tfx_work(tmp_path, capsys):
    module = tmp_path / "model.py"
    module.write_text(MODULE.replace("def build_model", "def build"))
    raw = yaml.safe_load((REPO / "examples" / "custom_model" / "penguins.yaml").read_text())
    raw["model"]["module"] = "model.py"
    config = tmp_path / "leanline.yaml"
    config.write_text(yaml.safe_dump(raw))
    output_dir = tmp_path / "output"
    code = cli.main(["--verbose", "run", "--config", str(config), "--output-dir", str(output_dir)])
    assert code == 2
    assert f"model.module {module}: defines no build_model" in capsys.readouterr().err
    # Only the bundled CSV was written (materialized before the checks): no run started.
    assert [p.name for p in output_dir.iterdir()] == ["data"]


def test_a_module_file_edit_changes_what_components_receive(tmp_path):
    example = REPO / "examples" / "custom_model"
    (tmp_path / "penguins_model.py").write_text((example / "penguins_model.py").read_text())
    (tmp_path / "penguins.yaml").write_text((example / "penguins.yaml").read_text())
    config = load_config(tmp_path / "penguins.yaml")
    before = custom_config(config, ("model",))
    assert before["model"]["module"] == str(tmp_path / "penguins_model.py")
    (tmp_path / "penguins_model.py").write_text(
        (example / "penguins_model.py").read_text() + "\n# edited\n"
    )
    # TFX caches a component by its inputs and settings: the hash makes an edit a new run.
    assert custom_config(config, ("model",)) != before


def test_the_example_module_follows_the_contract():
    check_module(str(REPO / "examples" / "custom_model" / "penguins_model.py"))


def test_a_regression_label_must_hold_numbers_before_the_run(tmp_path):
    from pipeline.inputs.checks import InputDataError, check_inputs

    data = tmp_path / "fares.csv"
    data.write_text("trip_miles,trip_seconds,fare\n1.2,300,$7.25\n3.4,900,12.50\n")
    raw = {
        "name": "fares",
        "data": {"path": "fares.csv"},
        "model": {
            "family": "tabular",
            "task": "regression",
            "label": {"column": "fare"},
            "features": {"numeric": ["trip_miles", "trip_seconds"]},
        },
    }
    (tmp_path / "leanline.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "leanline.yaml")
    with pytest.raises(InputDataError) as error:
        check_inputs(config, str(data))
    message = str(error.value)
    assert "fares.csv: column 'fare' must hold numbers (model.task regression)" in message
    assert "line 2 has '$7.25'" in message


def test_a_built_model_must_fit_the_task_and_a_regressor_answers_in_label_units():
    import numpy as np
    import tf_keras as keras

    from models.common.train import check_model_output, in_label_units
    from models.errors import UserError

    model_cfg = load_config(CONFIGS / "taxi_fare.yaml").model
    inputs = keras.Input(shape=(2,), name="x_xf")
    three = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    with pytest.raises(UserError, match=r"output shapes \[\(None, 3\)\]; model.task regression"):
        check_model_output(three, model_cfg)

    z_score = keras.Model(
        inputs, keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inputs)
    )
    check_model_output(z_score, model_cfg)
    scaled = in_label_units(z_score, _stats(mean=12.0, std=3.0))
    rows = np.array([[0.0, 0.0], [1.0, 0.5]], np.float32)
    np.testing.assert_allclose(scaled(rows).numpy().reshape(-1), [12.0, 12.0 + 3.0 * 1.5])


def test_pruning_spares_the_layer_that_computes_a_regressors_output():
    import tf_keras as keras

    from models.common.pruning import pruning_targets
    from models.common.train import in_label_units

    inputs = keras.Input(shape=(2,), name="x_xf")
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    z_score = keras.Model(inputs, keras.layers.Dense(1, name="prediction")(hidden))
    # The output layer is now the weightless rescaling; its Dense stays unpruned.
    assert pruning_targets(in_label_units(z_score, _stats()), "all") == ["hidden"]


def test_the_example_modules_transform_traces_on_the_penguins_columns():
    import functools

    import tensorflow as tf
    import tensorflow_transform as tft

    from models.custom.loader import module_function

    config = load_config(REPO / "examples" / "custom_model" / "penguins.yaml")
    preprocessing_fn = module_function(
        str(REPO / "examples" / "custom_model" / "penguins_model.py"), "preprocessing_fn"
    )
    # The CSV's columns as ExampleGen types them: the integer measurements are int64.
    spec = {
        "bill_length_mm": tf.io.VarLenFeature(tf.float32),
        "bill_depth_mm": tf.io.VarLenFeature(tf.float32),
        "flipper_length_mm": tf.io.VarLenFeature(tf.int64),
        "body_mass_g": tf.io.VarLenFeature(tf.int64),
        "island": tf.io.VarLenFeature(tf.string),
        "species": tf.io.VarLenFeature(tf.string),
    }
    used = tft.get_transform_input_columns(
        functools.partial(preprocessing_fn, custom_config=custom_config(config, ("model",))),
        spec,
        force_tf_compat_v1=True,
    )
    assert set(used) == set(spec)


def test_a_listed_metric_without_a_gated_one_gets_the_tasks_default(tmp_path):
    raw = yaml.safe_load((CONFIGS / "taxi_fare.yaml").read_text())
    raw["data"].pop("schema")
    raw["evaluation"] = {"metrics": ["MeanAbsoluteError", "ExampleCount"]}
    path = tmp_path / "leanline.yaml"
    path.write_text(yaml.safe_dump(raw))
    thresholds = load_config(path).evaluation.thresholds
    assert thresholds.metric == "mean_absolute_error" and thresholds.lower_is_better
