"""Config validation: every error names the file and the key a person must fix."""

from pathlib import Path

import pytest
import yaml

from models.config import DistillationConfig
from pipeline.config import ConfigError, custom_config, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "leanline.yaml"
    path.write_text(text)
    return path


def _taxi_with(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((CONFIGS / "taxi.yaml").read_text())
    raw["data"].pop("schema")
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return _write(tmp_path, yaml.safe_dump(raw))


@pytest.mark.parametrize("name", ["taxi", "penguins", "digits"])
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.name == name
    assert config.serving_model_dir == config.output_path / "serving" / name
    assert set(custom_config(config)) == {"model", "training", "compression"}
    assert custom_config(config, ("model",)) == {"model": config.model.model_dump()}


def test_taxi_schema_path_resolves_against_the_yaml():
    config = load_config(CONFIGS / "taxi.yaml")
    assert Path(config.resolve(config.data.schema_path)) == CONFIGS / "schemas/taxi/schema.pbtxt"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"model__hidden_unitz": [8]}, "model.hidden_unitz: unknown key"),
        ({"training__epochs": "many"}, "training.epochs: Input should be a valid integer"),
        (
            {"compression__pruning__target_sparsity": -0.1},
            "compression.pruning.target_sparsity: Input should be greater than or equal to 0",
        ),
        (
            {"evaluation__thresholds__min_value": 1.5},
            "evaluation.thresholds.min_value: Input should be less than or equal to 1",
        ),
        (
            {"model__family": "resnet"},
            "model.family: Input should be 'tabular', 'taxi', 'digits' or 'text'",
        ),
        (
            {"training__strategy": {"kind": "tpu"}},
            "training.strategy: strategy `tpu` needs `tpu_address`",
        ),
        (
            {"evaluation__thresholds__metric": "auc_pr"},
            "thresholds.metric 'auc_pr' is not among the computed metrics",
        ),
        ({"data__path": "x.csv"}, "data: set exactly one of `bundled`"),
        (
            {"evaluation__slices": [], "evaluation__thresholds__max_slice_drop": 0.02},
            "max_slice_drop / max_slice_increase gate slices, but `slices` is empty",
        ),
        (
            {"evaluation__thresholds__max_slice_increase": 0.1},
            "max_slice_increase cannot bound 'binary_accuracy', for which higher is better",
        ),
        ({"name": "Taxi Model"}, "name: String should match pattern"),
        (
            {"compression__distillation": {"hidden_units": [8]}},
            "list the student under compression.search.students instead",
        ),
        (
            {"compression__search__students": [{"temperature": 3}]},
            "a student needs at least one size",
        ),
        (
            {"compression__search__students": [{"conv_filters": [4]}]},
            "a student's conv_filters does not size the taxi model",
        ),
        (
            {"training__validation_fraction": 0.9},
            "training.validation_fraction: Input should be less than or equal to 0.5",
        ),
        (
            {"compression__search__quantizations": ["int4"]},
            "compression.search.quantizations.0: Input should be",
        ),
    ],
)
def test_invalid_values_name_file_and_key(tmp_path, changes, expected):
    path = _taxi_with(tmp_path, **changes)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(f"{path}: invalid configuration")
    assert expected in message


def test_missing_required_key(tmp_path):
    path = _write(tmp_path, "name: x\ndata: {bundled: taxi}\n")
    with pytest.raises(ConfigError, match=r"model: required key is missing"):
        load_config(path)


def test_missing_data_path_names_key_and_resolved_path(tmp_path):
    raw = yaml.safe_load((CONFIGS / "penguins.yaml").read_text())
    raw["data"] = {"path": "data/nowhere.csv"}
    path = _write(tmp_path, yaml.safe_dump(raw))
    with pytest.raises(
        ConfigError, match=rf"data.path: path does not exist: {tmp_path}/data/nowhere.csv"
    ):
        load_config(path)


def test_package_paths_resolve_to_installed_files(tmp_path):
    raw = yaml.safe_load((CONFIGS / "penguins.yaml").read_text())
    raw["data"] = {"path": "package:palmerpenguins/data/penguins.csv"}
    config = load_config(_write(tmp_path, yaml.safe_dump(raw)))
    assert Path(config.resolve(config.data.path)).is_file()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("name: [unclosed", "not valid YAML"), ("- a\n- b\n", "expected a mapping")],
)
def test_unreadable_yaml(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, text))


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config("/nonexistent/leanline.yaml")


def test_the_slice_gate_bounds_the_gated_metric_by_its_direction():
    penguins = load_config(CONFIGS / "penguins.yaml")
    assert penguins.evaluation.thresholds.vs_slices is None
    gated = penguins.with_overrides(evaluation={"thresholds": {"max_slice_drop": 0.02}})
    assert gated.evaluation.thresholds.vs_slices == ("absolute", 0.02)
    assert gated.evaluation.thresholds.min_slice_examples == 100
    taxi = load_config(CONFIGS / "taxi.yaml").evaluation.thresholds
    assert (taxi.vs_slices, taxi.min_slice_examples) == (("absolute", 0.02), 250)
    fare = load_config(CONFIGS / "taxi_fare.yaml").with_overrides(
        evaluation={"slices": [["company"]], "thresholds": {"max_slice_increase": 0.1}}
    )
    assert fare.evaluation.thresholds.vs_slices == ("relative", 0.1)


def test_the_search_budget_is_its_own_or_the_compression_gates():
    taxi = load_config(CONFIGS / "taxi.yaml")
    assert taxi.compression.search.max_quality_loss is None
    assert taxi.search_budget == taxi.evaluation.thresholds.max_drop_vs_uncompressed == 0.005
    assert (
        taxi.with_overrides(compression={"search": {"max_quality_loss": 0.01}}).search_budget
        == 0.01
    )
    gates = taxi.with_overrides(evaluation={"thresholds": {"max_drop_vs_uncompressed": 0.004}})
    assert gates.search_budget == 0.004
    # The Compressor sees no thresholds: it receives the budget resolved.
    assert custom_config(gates)["compression"]["search"]["max_quality_loss"] == 0.004
    fare = load_config(CONFIGS / "taxi_fare.yaml").with_overrides(compression={"search": {}})
    assert fare.search_budget == 0.05  # MAE may grow 5%, the gate's relative bound
    penguins = load_config(CONFIGS / "penguins.yaml")
    assert penguins.search_budget is None and penguins.training.validation_fraction is None
    # A search holds validation rows out of training: 1 in 5 unless training says otherwise.
    assert (taxi.training.validation_fraction, taxi.training.validation_every) == (0.2, 5)
    own = taxi.with_overrides(training={"validation_fraction": 0.1})
    assert own.training.validation_every == 10


def test_a_student_sizes_only_what_it_names():
    taxi = load_config(CONFIGS / "taxi.yaml")
    student = DistillationConfig(hidden_units=[8]).of(taxi.model)
    assert (student.hidden_units, student.max_embedding_dim) == ([8], taxi.model.max_embedding_dim)
    assert student.features == taxi.model.features
