"""The benchmark figures of README.md and benchmarks/README.md, made from the results files alone.

Invariant: the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in either README is
what `BLOCKS[NAME]` renders from `benchmarks/results/`, and ends with the provenance (commit,
date, machine, command) of every measurement it shows; a measurement without one cannot be
rendered. Outside those blocks the READMEs state no measured figure.
`tests/test_benchmark_figures.py` holds all of this, and that every commit named is an
ancestor of HEAD. Why: figures written by hand outlived the code they measured.

    python -m benchmarks.readme            # rewrite the blocks from the results
    python -m benchmarks.readme --check    # exit 1 and name the blocks that differ
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: benchmarks/ would shadow the `pipeline` package
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import importlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.provenance import REPO_ROOT, load_results

BENCHMARKS_README = REPO_ROOT / "benchmarks" / "README.md"
TOP_README = REPO_ROOT / "README.md"
READMES = (TOP_README, BENCHMARKS_README)
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
BLOCK = re.compile(
    r"<!-- (?P<name>[a-z0-9-]+):begin -->\n(?P<body>.*?)\n<!-- (?P=name):end -->", re.S
)


class MissingProvenance(ValueError):
    """A measurement without the commit, date, machine and command that made it."""


class UnknownBlock(LookupError):
    """A README block that BLOCKS does not name."""


@dataclass(frozen=True)
class Block:
    """One generated block: which README, which results files, which renderer."""

    readme: Path
    results: tuple[str, ...]  # file names under benchmarks/results/
    renderer: str  # "module:function", called with one results dict per file

    def render(self) -> str:
        module_name, function_name = self.renderer.split(":")
        render: Callable[..., str] = getattr(importlib.import_module(module_name), function_name)
        return render(*(load_results(RESULTS_DIR / name) for name in self.results))


BLOCKS: dict[str, Block] = {
    "compression": Block(
        BENCHMARKS_README, ("compression.json",), "benchmarks.compression:markdown"
    ),
    "compression-search": Block(
        BENCHMARKS_README, ("compression_search.json",), "benchmarks.compression:search_markdown"
    ),
    "pipeline": Block(BENCHMARKS_README, ("pipeline.json",), "benchmarks.pipeline:markdown"),
    "pipeline-fixed-cost": Block(
        BENCHMARKS_README, ("pipeline.json",), "benchmarks.pipeline:fixed_cost_markdown"
    ),
    "tfx-penguin": Block(
        BENCHMARKS_README, ("tfx_penguin.json",), "benchmarks.tfx_penguin:markdown"
    ),
    "inference": Block(BENCHMARKS_README, ("inference.json",), "benchmarks.inference:markdown"),
    "transform": Block(BENCHMARKS_README, ("transform.json",), "benchmarks.transform:markdown"),
    "text": Block(BENCHMARKS_README, ("text.json",), "benchmarks.text:markdown"),
    "small-tables": Block(
        BENCHMARKS_README, ("small_tables.json",), "benchmarks.small_tables:markdown"
    ),
    "performance": Block(
        TOP_README,
        (
            "pipeline.json",
            "tfx_penguin.json",
            "inference.json",
            "compression_search.json",
            "transform.json",
            "text.json",
            "small_tables.json",
        ),
        "benchmarks.headline:markdown",
    ),
}


# --- provenance lines ------------------------------------------------------------------------


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


# --- the READMEs -------------------------------------------------------------------------------


def blocks_in(text: str) -> Iterator[re.Match[str]]:
    return BLOCK.finditer(text)


def _block(readme: Path, name: str) -> Block:
    if name not in BLOCKS or BLOCKS[name].readme != readme:
        raise UnknownBlock(
            f"{readme.name}: block {name!r} has no entry in benchmarks.readme.BLOCKS"
        )
    return BLOCKS[name]


def _shown(readme: Path) -> str:
    return str(readme.relative_to(REPO_ROOT)) if readme.is_relative_to(REPO_ROOT) else str(readme)


def _rendered_blocks(readme: Path) -> Iterator[tuple[re.Match[str], str | Exception]]:
    """Each block of `readme` with its fresh text, or what stopped it from rendering."""
    for match in blocks_in(readme.read_text()):
        try:
            yield match, _block(readme, match["name"]).render()
        except (MissingProvenance, UnknownBlock) as error:
            yield match, error


def problems(readme: Path) -> list[str]:
    """What is wrong with the figures of `readme`: blocks that do not render, or whose text
    is not what the results render."""
    found = []
    for match, fresh in _rendered_blocks(readme):
        if isinstance(fresh, Exception):
            found.append(f"{_shown(readme)}: {match['name']}: {fresh}")
        elif fresh != match["body"]:
            found.append(
                f"{_shown(readme)}: {match['name']} is not what its results "
                "render: run `python -m benchmarks.readme`"
            )
    return found


def absent() -> list[str]:
    """Blocks of BLOCKS that their README does not hold."""
    present = {
        readme: {match["name"] for match in blocks_in(readme.read_text())}
        for readme in {block.readme for block in BLOCKS.values()}
    }
    return [name for name, block in BLOCKS.items() if name not in present[block.readme]]


def refresh() -> list[str]:
    """Rewrites every block that renders; prints and returns what stopped the others."""
    stopped = []
    for readme in READMES:
        text = readme.read_text()
        for match, fresh in reversed(list(_rendered_blocks(readme))):
            if isinstance(fresh, Exception):
                stopped.append(f"{_shown(readme)}: {match['name']}: {fresh}")
            else:
                text = text[: match.start("body")] + fresh + text[match.end("body") :]
        readme.write_text(text)
    for problem in stopped:
        print(f"README not refreshed: {problem}", file=sys.stderr)
    return stopped


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    if not args.check:
        return 1 if refresh() else 0
    found = [problem for readme in READMES for problem in problems(readme)]
    found += [f"missing block: {name}" for name in absent()]
    print("\n".join(found) or "README figures are those of benchmarks/results/")
    return 1 if found else 0


if __name__ == "__main__":
    # The renderers import `benchmarks.readme`; run that module, not this `__main__` copy,
    # so that both raise and catch the same MissingProvenance.
    from benchmarks import readme

    sys.exit(readme.main())
