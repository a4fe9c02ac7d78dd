"""Loads a user's model module (`model.module`) and checks its two functions.

A module is a `.py` file (a local path, or a gs:// URI the pods read) or a dotted module
name importable where the pipeline runs. A file is run only when its content has the
hash `model.module_sha256` gives, if it gives one: `leanline compile` sets it for a
bucket module, which whoever can write the object could otherwise change under the pods. Every failure is a UserError that names the
module and the function, so a broken module stops a run before Transform, not inside it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from models.errors import UserError

# What a module defines: the contract the bundled families follow.
MODULE_FUNCTIONS = {
    "preprocessing_fn": "preprocessing_fn(inputs, custom_config) -> dict of transformed tensors",
    "build_model": "build_model(inputs, model_config) -> tf_keras.Model",
}


class ModelModuleError(UserError):
    """The configured model module cannot be imported or lacks a function."""


def _import_failure(module: str, error: BaseException) -> ModelModuleError:
    # The innermost frame inside the user's code says where to look.
    frames = [f for f in traceback.extract_tb(error.__traceback__) if "importlib" not in f.filename]
    where = f" ({frames[-1].filename}, line {frames[-1].lineno})" if frames else ""
    return ModelModuleError(
        f"model.module {module}: importing it failed{where}: {type(error).__name__}: {error}"
    )


@functools.cache
def _local_copy(uri: str) -> Path:
    """A remote module file copied to local disk, so Python can import it."""
    import tensorflow as tf  # only remote files need TensorFlow's file systems

    directory = Path(tempfile.mkdtemp(prefix="leanline-module-"))
    target = directory / uri.rpartition("/")[2]
    try:
        tf.io.gfile.copy(uri, str(target))
    except tf.errors.OpError as error:
        raise ModelModuleError(f"model.module {uri}: cannot read it: {error.message}") from None
    return target


def _load_file(path: str, sha256: str | None) -> ModuleType:
    file = _local_copy(path) if "://" in path else Path(path)
    if not file.is_file():
        raise ModelModuleError(f"model.module {path}: no such file")
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    if sha256 is not None and digest != sha256:
        raise ModelModuleError(
            f"model.module {path}: its content has sha256 {digest}, not the {sha256} of "
            "model.module_sha256 (the module the pipeline was compiled with): it changed "
            "since; compile again to run the new content, or restore the old"
        )
    # A name per file content: two modules called model.py, or an edited one, never share
    # an entry in sys.modules.
    name = f"leanline_model_module_{file.stem}_{digest[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ModelModuleError(f"model.module {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses and pickling look a module up by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise _import_failure(path, error) from None
    return module


def load_module(module: str, sha256: str | None = None) -> ModuleType:
    """The module `model.module` names, executed once per process and file content
    (Transform traces the preprocessing_fn about ten times). A file is executed only
    when its content has the `sha256` given (`model.module_sha256`), if one is."""
    if module.endswith(".py"):
        return _load_file(module, sha256)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and module.startswith(error.name):
            raise ModelModuleError(
                f"model.module {module}: no module named {error.name!r} where the pipeline "
                "runs (install it, or name a .py file)"
            ) from None
        raise _import_failure(module, error) from None
    except Exception as error:
        raise _import_failure(module, error) from None


def module_function(module: str, name: str, sha256: str | None = None) -> Callable[..., Any]:
    """`name` from the module (`load_module`), checked to take the two arguments of
    MODULE_FUNCTIONS."""
    function = getattr(load_module(module, sha256), name, None)
    contract = MODULE_FUNCTIONS[name]
    if function is None:
        raise ModelModuleError(f"model.module {module}: defines no {name}; expected {contract}")
    if not callable(function):
        raise ModelModuleError(
            f"model.module {module}: {name} is not a function; expected {contract}"
        )
    try:
        inspect.signature(function).bind(None, None)
    except TypeError:
        raise ModelModuleError(
            f"model.module {module}: {name}{inspect.signature(function)} cannot be called "
            f"with two arguments; expected {contract}"
        ) from None
    except ValueError:  # no signature to read (a builtin): let the call decide
        pass
    return function


def check_module(module: str, sha256: str | None = None) -> None:
    """Imports the module and checks both functions; raises ModelModuleError."""
    for name in MODULE_FUNCTIONS:
        module_function(module, name, sha256)
