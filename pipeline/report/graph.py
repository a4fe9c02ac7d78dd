"""The pipeline's DAG as an inline SVG: one row per component with its status and wall
time, dependencies drawn as arcs on the left (an arc diagram reads well for a DAG that
is mostly a chain)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from pipeline.config import LeanlineConfig
from pipeline.report.markup import STATUS_COLORS, Markup, esc
from pipeline.report.run import PipelineRun

NOT_RUN = "not run"
_ROW = 44
_BOX_HEIGHT = 32
_BOX_WIDTH = 380
_ARC_STEP = 13
_BAR_WIDTH = 300


@dataclasses.dataclass(frozen=True)
class Node:
    id: str
    upstream: tuple[str, ...]


def pipeline_nodes(config: LeanlineConfig) -> list[Node]:
    """The components `create_pipeline` wires for `config`, each after its upstream ones."""
    from pipeline.pipeline import create_pipeline  # TFX: only the report draws the graph

    # Only the DAG's shape is read; ExampleGen's input location does not change it.
    dsl = create_pipeline(
        config, data_path=str(config.output_path), pipeline_root=str(config.output_path)
    )
    nodes = [Node(c.id, tuple(sorted(u.id for u in c.upstream_nodes))) for c in dsl.components]
    return _chain_order(nodes)


def _chain_order(nodes: Sequence[Node]) -> list[Node]:
    """Topological order by distance to the end of the pipeline, so that a side input (the
    blessed-model resolver) sits next to its consumer instead of at the top."""
    downstream: dict[str, list[str]] = {node.id: [] for node in nodes}
    for node in nodes:
        for upstream in node.upstream:
            downstream[upstream].append(node.id)
    height: dict[str, int] = {}
    for node in reversed(nodes):  # `nodes` is topologically sorted
        height[node.id] = 1 + max((height[d] for d in downstream[node.id]), default=-1)
    position = {node.id: index for index, node in enumerate(nodes)}
    return sorted(nodes, key=lambda node: (-height[node.id], position[node.id]))


def _box(index: int, x: float, node: Node, status: str, seconds: float | None) -> str:
    y = index * _ROW + 6
    color = STATUS_COLORS[status]
    dash = ' stroke-dasharray="4 3"' if status == NOT_RUN else ""
    time = "" if seconds is None else f" · {seconds:.1f} s"
    return (
        f'<rect x="{x}" y="{y}" width="{_BOX_WIDTH}" height="{_BOX_HEIGHT}" rx="5" fill="white" '
        f'stroke="{color}" stroke-width="1.5"{dash}/>'
        f'<rect x="{x}" y="{y}" width="6" height="{_BOX_HEIGHT}" rx="2" fill="{color}"/>'
        f'<text x="{x + 14}" y="{y + 21}" font-weight="600">{esc(node.id)}</text>'
        f'<text x="{x + _BOX_WIDTH - 10}" y="{y + 21}" text-anchor="end" fill="{color}">'
        f"{esc(status)}{esc(time)}</text>"
    )


def _bar(index: int, x: float, status: str, seconds: float | None, longest: float) -> str:
    if not seconds or not longest:
        return ""
    y = index * _ROW + 6 + _BOX_HEIGHT / 2 - 6
    width = max(2.0, _BAR_WIDTH * seconds / longest)
    return (
        f'<rect x="{x}" y="{y}" width="{width:.1f}" height="12" rx="2" '
        f'fill="{STATUS_COLORS[status]}" opacity="0.55"/>'
    )


def _arc(start_row: int, end_row: int, x: float) -> str:
    start_y = start_row * _ROW + 6 + _BOX_HEIGHT * 0.7
    end_y = end_row * _ROW + 6 + _BOX_HEIGHT * 0.3
    bend = x - _ARC_STEP * (end_row - start_row)
    return (
        f'<path d="M{x},{start_y:.1f} C{bend},{start_y:.1f} {bend},{end_y:.1f} {x},{end_y:.1f}" '
        'fill="none" stroke="#90a4ae" stroke-width="1.2" marker-end="url(#arrow)"/>'
    )


def pipeline_svg(nodes: Sequence[Node], run: PipelineRun | None) -> Markup:
    """Rows of components (status, wall time, a bar scaled to the slowest component)."""
    row_of = {node.id: index for index, node in enumerate(nodes)}
    spans = [row_of[node.id] - row_of[u] for node in nodes for u in node.upstream]
    box_x = 12 + _ARC_STEP * max(spans, default=1)
    bar_x = box_x + _BOX_WIDTH + 16
    components = run.components if run else {}
    longest = max((c.seconds for c in components.values()), default=0.0)
    parts = []
    for index, node in enumerate(nodes):
        component = components.get(node.id)
        status = component.status if component else NOT_RUN
        status = status if status in STATUS_COLORS else NOT_RUN
        seconds = component.seconds if component else None
        parts.append(_box(index, box_x, node, status, seconds))
        parts.append(_bar(index, bar_x, status, seconds, longest))
        parts.extend(_arc(row_of[u], index, box_x) for u in node.upstream)
    width = bar_x + _BAR_WIDTH + 10
    height = len(nodes) * _ROW + 8
    arrow = (
        '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#90a4ae"/></marker></defs>'
    )
    return Markup(
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="pipeline graph">'
        f"{arrow}{''.join(parts)}</svg>"
    )
