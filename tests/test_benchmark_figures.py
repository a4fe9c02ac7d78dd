"""Every measured figure in the READMEs comes from a benchmark's results, and names a commit
of this history: the generated blocks are what the results render, every measurement
names a clean commit that is an ancestor of HEAD, and no figure stands outside a block."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks import readme
from benchmarks.provenance import (
    REPO_ROOT,
    MissingProvenance,
    commit_of,
    is_ancestor_of_head,
    measured_at,
)

READMES = readme.READMES
# A measured figure: seconds, minutes, sizes, ratios, points, rows/s, a percentage with
# decimals. A bound ("within 90 s", ">= 10x", "target ... 0.5 pt") is a setting, not a figure.
FIGURE = re.compile(
    r"(?<![\w.-])[+-]?\d[\d,]*(?:\.\d+)?\s?(?:ms|s|min|x|KB|KiB|MB|MiB|GB|GiB|B|pt|rows/s)\b"
    r"|(?<![\w.])\d+\.\d+\s?%"
    r"|(?<![\w.])\d+(?:\.\d+)? times (?:faster|slower|smaller|larger|bigger|the)\b"
)
BOUND = re.compile(r"(>=|<=|≥|≤|\bwithin\b|\bunder\b|\bat most\b|\bat least\b|[Tt]arget)[^.;|]*$")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`]*`")  # a code span may wrap onto the next line


def stray_figures(text: str) -> list[str]:
    """`line N: figure` for each measured figure outside the generated blocks and code."""
    without_blocks = readme.BLOCK.sub(lambda match: "\n" * match[0].count("\n"), text)
    without_fences = FENCE.sub(lambda match: "\n" * match[0].count("\n"), without_blocks)
    without_code = INLINE_CODE.sub(lambda match: "``" + "\n" * match[0].count("\n"), without_fences)
    found = []
    for number, (prose, line) in enumerate(
        zip(without_code.split("\n"), text.split("\n"), strict=True), start=1
    ):
        for match in FIGURE.finditer(prose):
            if not BOUND.search(prose[: match.start()]):
                found.append(f"line {number}: {match[0]!r} in {line.strip()[:100]!r}")
    return found


def provenances(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        own = [node["provenance"]] if isinstance(node.get("provenance"), dict) else []
        return own + [found for value in node.values() for found in provenances(value)]
    if isinstance(node, list):
        return [found for value in node for found in provenances(value)]
    return []


def history_missing() -> str | None:
    """Why this checkout cannot tell ancestors apart, or None when it can."""
    command = ["git", "rev-parse", "--is-shallow-repository"]
    shallow = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if shallow.returncode != 0:
        return "not a git checkout"
    return "a shallow clone: the history is not here" if shallow.stdout.strip() == "true" else None


@pytest.mark.parametrize("path", READMES, ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_the_readme_blocks_are_what_the_results_render(path: Path) -> None:
    assert readme.problems(path) == []


def test_every_block_has_its_place_in_a_readme() -> None:
    assert readme.absent() == []


@pytest.mark.parametrize("path", READMES, ids=lambda path: path.relative_to(REPO_ROOT).as_posix())
def test_no_measured_figure_stands_outside_the_generated_blocks(path: Path) -> None:
    assert stray_figures(path.read_text()) == []


@pytest.mark.parametrize(
    "results", sorted(readme.RESULTS_DIR.glob("*.json")), ids=lambda path: path.name
)
def test_every_measurement_names_a_clean_commit_of_this_history(results: Path) -> None:
    if reason := history_missing():
        pytest.skip(reason)
    found = provenances(json.loads(results.read_text()))
    assert found, f"{results.name} holds no provenance: measure it again"
    for provenance in found:
        assert not provenance["dirty"], f"{results.name}: measured with uncommitted changes"
        assert is_ancestor_of_head(provenance["commit"]), (
            f"{results.name}: commit {provenance['commit']} is not an ancestor of HEAD"
        )
        assert {"date", "machine", "command"} <= set(provenance)


def test_the_checks_catch_a_figure_a_stale_block_and_a_foreign_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What each check above relies on, shown failing on made-up input.
    assert len(stray_figures("The run takes 66 s, is 4.6x smaller and 1.5 times faster.")) == 3
    assert stray_figures("Target: within 90 s; `--sizes 15000`; >= 10x.") == []
    assert stray_figures("<!-- text:begin -->\n66 s\n<!-- text:end -->") == []
    if history_missing() is None:
        head = commit_of(REPO_ROOT)
        # A commit made after HEAD, on no branch: a measurement's commit from elsewhere.
        child = subprocess.run(
            ["git", "commit-tree", "HEAD^{tree}", "-p", head, "-m", "not on this history"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            # A clone on a CI machine may have no git identity.
            env={
                **os.environ,
                "GIT_AUTHOR_NAME": "test",
                "GIT_AUTHOR_EMAIL": "test@localhost",
                "GIT_COMMITTER_NAME": "test",
                "GIT_COMMITTER_EMAIL": "test@localhost",
            },
        ).stdout.strip()
        assert is_ancestor_of_head(head)
        assert not is_ancestor_of_head(child)
        with pytest.raises(ValueError):
            is_ancestor_of_head("0" * 40)
    with pytest.raises(MissingProvenance):
        measured_at([("a run", {"wall_seconds": 66.0})])
    page = tmp_path / "README.md"
    page.write_text("<!-- small-tables:begin -->\nold figures\n<!-- small-tables:end -->\n")
    block = readme.BLOCKS["small-tables"]
    monkeypatch.setitem(
        readme.BLOCKS, "small-tables", readme.Block(page, block.results, block.renderer)
    )
    assert readme.problems(page) == [
        f"{page}: small-tables is not what its results render: run `python -m benchmarks.readme`"
    ]
