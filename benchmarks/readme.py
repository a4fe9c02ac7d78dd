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

from benchmarks.provenance import REPO_ROOT, MissingProvenance, load_results

BENCHMARKS_README = REPO_ROOT / "benchmarks" / "README.md"
TOP_README = REPO_ROOT / "README.md"
READMES = (TOP_README, BENCHMARKS_README)
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
BLOCK = re.compile(
    r"<!-- (?P<name>[a-z0-9-]+):begin -->\n(?P<body>.*?)\n<!-- (?P=name):end -->", re.S
)


class UnknownBlock(LookupError):
    """A README block that BLOCKS does not name."""


@dataclass(frozen=True)
class Block:
    """One generated block: which README, which results files, which renderer."""

    readme: Path
    results: tuple[str, ...]  # file names under benchmarks/results/
    # "module:function", called with one results dict per file; imported when rendered,
    # since the benchmarks that hold the renderers call refresh() of this module.
    renderer: str

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


@dataclass(frozen=True)
class Refreshed:
    """A README's text, that text with every block that renders rendered afresh from the
    results, the blocks whose text changed, and what stopped the others."""

    text: str
    fresh: str
    stale: list[str]
    stopped: list[str]


def _refreshed(readme: Path) -> Refreshed:
    text = readme.read_text()
    fresh, stale, stopped = text, [], []
    for match in reversed(list(blocks_in(text))):
        try:
            body = _block(readme, match["name"]).render()
        except (MissingProvenance, UnknownBlock) as error:
            stopped.insert(0, f"{_shown(readme)}: {match['name']}: {error}")
            continue
        if body != match["body"]:
            stale.insert(0, match["name"])
            fresh = fresh[: match.start("body")] + body + fresh[match.end("body") :]
    return Refreshed(text, fresh, stale, stopped)


def problems(readme: Path) -> list[str]:
    """What is wrong with the figures of `readme`: blocks that do not render, or whose text
    is not what the results render."""
    refreshed = _refreshed(readme)
    return refreshed.stopped + [
        f"{_shown(readme)}: {name} is not what its results render: run `python -m benchmarks.readme`"
        for name in refreshed.stale
    ]


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
        refreshed = _refreshed(readme)
        if refreshed.stale:
            readme.write_text(refreshed.fresh)
        stopped += refreshed.stopped
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
    sys.exit(main())
