"""The foundation: the stack imports, the compat runtime logic, a real two-component TFX run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.inputs.datasets import bundled_csv

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = ROOT / "scripts" / "bootstrap"


def _bootstrap_fn(snippet: str, **env: str) -> str:
    """Runs `snippet` with scripts/bootstrap's functions sourced."""
    result = subprocess.run(
        ["bash", "-c", f"source {BOOTSTRAP}; {snippet}"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    return result.stdout.strip()


def test_stack_imports_in_a_fresh_interpreter():
    code = (
        "import os, tfx, ml_metadata, tensorflow_data_validation, tensorflow_model_optimization, kfp\n"
        "import tensorflow as tf\n"
        "from tfx import v1\n"
        "assert os.environ['TF_USE_LEGACY_KERAS'] == '1'\n"
        "assert hasattr(v1.orchestration.experimental, 'KubeflowV2DagRunner'), 'kfp extra missing'\n"
        "print(tfx.__version__, tf.__version__, kfp.__version__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["1.21.0", "2.21.0", "2.16.1"]


@pytest.mark.parametrize(
    ("version", "needed", "expected"),
    [
        ("2.41", "2.39", True),
        ("2.39", "2.39", True),
        ("2.36", "2.39", False),
        ("2.4", "2.39", False),
    ],
)
def test_glibc_version_comparison(version, needed, expected):
    answer = _bootstrap_fn(f"version_ge {version} {needed} && echo yes || echo no")
    assert answer == ("yes" if expected else "no")


def test_mirror_is_read_from_deb822_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example.invalid/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example.invalid/debian\nSuites: bookworm\n"
    )
    assert (
        _bootstrap_fn("host_debian_mirror", APT_ETC=str(tmp_path))
        == "http://mirror.example.invalid/debian"
    )


def test_mirror_is_read_from_one_line_sources(tmp_path):
    (tmp_path / "sources.list").write_text(
        "deb [arch=amd64] http://mirror.example.invalid/debian bookworm main\n"
        "deb http://mirror.example.invalid/debian-security bookworm-security main\n"
    )
    assert (
        _bootstrap_fn("host_debian_mirror", APT_ETC=str(tmp_path))
        == "http://mirror.example.invalid/debian"
    )


def _install_browser(path: Path) -> subprocess.CompletedProcess[str]:
    """scripts/bootstrap's install_browser with only `path` on PATH (set after sourcing,
    which needs the host's tools). Neither case below reaches apt-get install."""
    return subprocess.run(
        ["bash", "-c", f"source {BOOTSTRAP}; PATH={path}; install_browser"],
        capture_output=True,
        text=True,
        check=True,
    )


def test_the_browser_install_is_skipped_with_a_message_without_apt_get(tmp_path):
    result = _install_browser(tmp_path)
    assert result.stdout == ""
    assert result.stderr == (
        "bootstrap: no chromium and no apt-get: skipping it (the report-rendering test will skip)\n"
    )


def test_the_browser_install_does_nothing_when_chromium_is_on_path(tmp_path):
    # Found by name on PATH, as the report-rendering test finds it; never run here.
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\nexit 1\n")
    chromium.chmod(0o755)
    result = _install_browser(tmp_path)
    assert (result.stdout, result.stderr) == ("", "")


def test_python_wrapper_exists_exactly_when_the_host_glibc_is_too_old():
    host = _bootstrap_fn("host_glibc")
    too_old = _bootstrap_fn(f"version_ge {host} $NEEDED_GLIBC && echo no || echo yes") == "yes"
    venv_python = Path(sys.prefix) / "bin" / "python"
    is_wrapper = venv_python.read_bytes()[:2] == b"#!"
    assert is_wrapper == too_old
    if too_old:
        assert 'ld-linux-x86-64.so.2" --library-path' in venv_python.read_text()


@pytest.mark.parametrize(
    ("name", "rows", "columns"), [("taxi", 15002, 18), ("penguins", 344, 8), ("digits", 1797, 65)]
)
def test_bundled_datasets(tmp_path, name, rows, columns):
    path = bundled_csv(name, tmp_path)
    lines = path.read_text().splitlines()
    assert len(lines[0].split(",")) == columns
    assert len(lines) - 1 >= rows - 2  # taxi has a few quoted multi-line cells
    if name == "penguins":
        assert "NA" not in path.read_text()


@pytest.mark.slow
def test_two_component_local_dag_run(tmp_path):
    from tensorflow_data_validation.utils import stats_util
    from tfx import v1 as tfx

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    sample = bundled_csv("taxi", tmp_path).read_text().splitlines()[:301]
    (data_dir / "taxi.csv").write_text("\n".join(sample) + "\n")
    example_gen = tfx.components.CsvExampleGen(input_base=str(data_dir))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="foundation",
        pipeline_root=str(tmp_path / "root"),
        components=[example_gen, statistics_gen],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "metadata.sqlite")
        ),
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)

    statistics = list(
        (tmp_path / "root" / "StatisticsGen" / "statistics").glob("*/Split-*/FeatureStats.pb")
    )
    assert sorted(p.parent.name for p in statistics) == ["Split-eval", "Split-train"]
    counted = sum(stats_util.load_stats_binary(str(p)).datasets[0].num_examples for p in statistics)
    assert counted == 300


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--direct_running_mode=in_memory"],
            [
                "--direct_running_mode=in_memory",
                "--runner=FnApiRunner",
                "--sdk_container_image=unused-locally",
            ],
        ),
        # A runner the user names is theirs, with whatever dependency flags it needs.
        (
            ["--runner=DataflowRunner", "--project=p", "--region=r"],
            ["--runner=DataflowRunner", "--project=p", "--region=r"],
        ),
        (["--runner", "FlinkRunner"], ["--runner", "FlinkRunner"]),
    ],
)
def test_local_beam_args_pin_the_fn_api_runner_unless_a_runner_is_named(args, expected):
    from pipeline.local_runner import local_beam_args

    assert local_beam_args(args) == expected
