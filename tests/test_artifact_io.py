"""Artifact URIs are read and written only through TensorFlow's file system (TFX's
`fileio`, `tf.io.gfile`, or Beam's `FileSystems` where Beam reads), never through the
local file system: on Kubeflow an artifact URI is `gs://...`, which `pathlib.Path`
silently turns into `gs:/...` and `open` or `shutil` cannot open at all.

The rule this test applies to every module of components/, models/ and pipeline/: no
call of a local file-system function (`Path`, `open`, `shutil.*`, `os.listdir`,
`os.path.exists`, `glob.glob`... `LOCAL_FILE_SYSTEM_CALLS`) takes an artifact URI. An
artifact URI is an artifact's `.uri`, a name ending in `uri` (the project's names say
what things are: `model_uri` is a URI, `output_dir` of a local run is a path), or a
variable of the same function assigned from an expression holding either. Local-only
things (the CLI's config files, a local run's output directory, /proc) keep their
pathlib code, because nothing in them is named or derived as a URI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHECKED_PACKAGES = ("components", "models", "pipeline")
# Functions that open only the local disk, by their dotted name as called.
LOCAL_FILE_SYSTEM_CALLS = frozenset(
    {
        "Path", "PurePath", "PosixPath", "pathlib.Path", "open", "io.open",
        "os.listdir", "os.scandir", "os.walk", "os.makedirs", "os.mkdir", "os.remove",
        "os.unlink", "os.rename", "os.replace", "os.stat", "os.path.exists",
        "os.path.isdir", "os.path.isfile", "os.path.getsize", "os.path.getmtime",
        "glob.glob", "glob.iglob",
    }
)  # fmt: skip
LOCAL_FILE_SYSTEM_MODULES = ("shutil.",)  # every shutil function


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _is_local_file_system_call(call: ast.Call) -> bool:
    name = _dotted_name(call.func)
    return name is not None and (
        name in LOCAL_FILE_SYSTEM_CALLS or name.startswith(LOCAL_FILE_SYSTEM_MODULES)
    )


def _names_a_uri(node: ast.AST, uri_variables: set[str]) -> bool:
    """Whether `node` holds an artifact URI: `.uri`, a `*uri` name, or a URI variable."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Attribute) and inner.attr == "uri":
            return True
        if isinstance(inner, ast.Name) and (
            inner.id.lower().endswith("uri") or inner.id in uri_variables
        ):
            return True
    return False


def _uri_variables(function: ast.AST) -> set[str]:
    """The function's variables assigned (directly or through others) from a URI."""
    assignments = [
        (target.id, node.value)
        for node in ast.walk(function)
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    ]
    variables: set[str] = set()
    while True:
        found = {name for name, value in assignments if _names_a_uri(value, variables)}
        if found <= variables:
            return variables
        variables |= found


def uri_file_system_violations(source: str, filename: str = "<snippet>") -> list[str]:
    """Each local file-system call on an artifact URI in `source`, as `file:line: code`."""
    tree = ast.parse(source, filename)
    functions = ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
    # Each function with its variables (nested functions share their enclosing ones), and
    # the module's own statements with theirs.
    module_statements = [s for s in tree.body if not isinstance(s, functions | ast.ClassDef)]
    scopes = [
        ast.Module(body=module_statements, type_ignores=[]),
        *(node for node in ast.walk(tree) if isinstance(node, functions)),
    ]
    violations = set()
    for scope in scopes:
        uri_variables = _uri_variables(scope)
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call) or not _is_local_file_system_call(node):
                continue
            arguments = [*node.args, *(keyword.value for keyword in node.keywords)]
            if any(_names_a_uri(argument, uri_variables) for argument in arguments):
                violations.add(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return sorted(violations)


def checked_modules() -> list[Path]:
    return sorted(path for package in CHECKED_PACKAGES for path in (REPO / package).rglob("*.py"))


def test_no_artifact_uri_goes_through_the_local_file_system() -> None:
    violations = [
        violation
        for path in checked_modules()
        for violation in uri_file_system_violations(path.read_text(), str(path.relative_to(REPO)))
    ]
    assert violations == [], "use tf.io.gfile / tfx.dsl.io.fileio on these URIs"


@pytest.mark.parametrize(
    "planted",
    [
        "def push(model):\n    return Path(model.uri)\n",
        "def push(model):\n    (Path(model.uri) / 'push.json').write_text('{}')\n",
        "def copy(model_uri, staging):\n    shutil.copytree(model_uri, staging)\n",
        "def read(run):\n    path = os.path.join(run.uri, 'history.json')\n"
        "    with open(path) as handle:\n        return handle.read()\n",
        "def serving(model):\n    source = path_utils.serving_model_path(model.uri)\n"
        "    target = source + '/x'\n    return os.path.exists(target)\n",
        "def listing(examples):\n    return os.listdir(examples[0].uri)\n",
    ],
)
def test_the_check_finds_a_planted_local_call_on_a_uri(planted: str) -> None:
    assert len(uri_file_system_violations(planted)) == 1


@pytest.mark.parametrize(
    "allowed",
    [
        "def push(model):\n    return tf.io.gfile.exists(model.uri)\n",
        "def summary(pushed):\n    with fileio.open(os.path.join(pushed.uri, 'p.json'), 'w') as f:\n"
        "        f.write('{}')\n",
        "def report(output_dir):\n    return (Path(output_dir) / 'report.html').read_text()\n",
    ],
)
def test_the_check_leaves_file_system_calls_on_uris_and_local_paths_alone(allowed: str) -> None:
    assert uri_file_system_violations(allowed) == []
