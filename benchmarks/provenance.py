"""Where and on what a benchmark figure was measured: the commit, the date, the machine, the command.

Invariant: every measurement a benchmark saves carries a `provenance` entry made by
`provenance()` at the time it was taken, and a README figure is printed only from such an
entry (`benchmarks/readme.py`). A run on a work tree with uncommitted changes to tracked
files records `dirty: true`: its figures name no commit that holds the code that made them,
and the README check refuses them. Why: figures copied by hand outlived the code they
measured; a figure that names its commit can be checked against the history.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
GIB = 1024**3
# Measurements write these; a run that changed only them still ran the committed code.
OWN_OUTPUTS = ("benchmarks/results/", "benchmarks/README.md", "README.md")


def _git(code_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=code_dir, capture_output=True, text=True, check=True
    ).stdout.strip()


def commit_of(code_dir: Path) -> str:
    return _git(code_dir, "rev-parse", "HEAD")


def is_ancestor_of_head(commit: str, code_dir: Path = REPO_ROOT) -> bool:
    """Whether `commit` is HEAD or one of its ancestors; raises for what is no commit."""
    command = ["git", "merge-base", "--is-ancestor", commit, "HEAD"]
    answer = subprocess.run(command, cwd=code_dir, capture_output=True, text=True)
    if answer.returncode not in (0, 1):  # 1: a commit, not an ancestor
        raise ValueError(f"{commit!r} is no commit of {code_dir}: {answer.stderr.strip()}")
    return answer.returncode == 0


def _uncommitted_changes(code_dir: Path) -> list[str]:
    """Tracked files that differ from HEAD, staged or not, but for what measuring writes."""
    paths = _git(code_dir, "diff", "--name-only", "HEAD").splitlines()
    return [path for path in paths if not path.startswith(OWN_OUTPUTS)]


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    models = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return models[0] if models else platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def command() -> str:
    """The command as typed, with the interpreter shortened to `python`."""
    return " ".join(["python", *sys.orig_argv[1:]])


def provenance(code_dir: Path = REPO_ROOT) -> dict[str, Any]:
    """Of a measurement made now, of the code checked out in `code_dir` (another commit's
    worktree, for a side-by-side run)."""
    changes = _uncommitted_changes(code_dir)
    return {
        "commit": commit_of(code_dir),
        "dirty": bool(changes),
        **({"uncommitted": changes} if changes else {}),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": command(),
    }


def stamped(measurement: dict[str, Any], code_dir: Path = REPO_ROOT) -> dict[str, Any]:
    """`measurement` with the provenance of this moment and of the code in `code_dir`."""
    return {**measurement, "provenance": provenance(code_dir)}


def load_results(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(results: dict[str, Any], path: Path) -> None:
    """Writes atomically: an interrupted benchmark leaves the previous file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)


class MissingProvenance(ValueError):
    """A measurement without the commit, date, machine and command that made it."""


def provenance_of(label: str, measurement: dict[str, Any]) -> dict[str, Any]:
    found = measurement.get("provenance")
    if not found or not found.get("commit"):
        raise MissingProvenance(
            f"{label}: no provenance in its results entry; measure it again with the benchmark "
            "(its figures cannot be shown without the commit that made them)"
        )
    return found


def _machine_words(machine: dict[str, Any]) -> str:
    cpu = f" ({machine['cpu']})" if machine.get("cpu") else ""
    return f"{machine['cpus']} CPUs{cpu}, {machine['memory_gib']} GiB"


def measured_at(measurements: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """The closing line(s) of a block: the provenance of each measurement it shows, grouped
    by commit and command, naming what was measured when there is more than one group."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    dates: dict[tuple[str, str, str], list[str]] = {}
    for label, measurement in measurements:
        found = provenance_of(label, measurement)
        key = (found["commit"], found["command"], _machine_words(found["machine"]))
        groups.setdefault(key, []).append(label)
        dates.setdefault(key, []).append(found["date"][:10])
    lines = []
    for (commit, command, machine), labels in groups.items():
        days = sorted(set(dates[(commit, command, machine)]))
        when = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
        what = f"- {', '.join(labels)}: measured" if len(groups) > 1 else "Measured"
        lines.append(f"{what} at commit `{commit[:10]}` on {when}, {machine}: `{command}`.")
    return "\n".join(lines)
