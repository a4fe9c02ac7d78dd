"""The report's PNG plots, drawn with matplotlib's object API (no pyplot, no global state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_DPI = 110
_MARKERS = "osD^v*"


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=_DPI)
    return path


def training_curves(epochs: Sequence[Mapping[str, float]], path: Path) -> Path:
    """Loss on the left, every other metric on the right; train solid, validation dashed."""
    names = [name for name in epochs[0] if name != "epoch" and not name.startswith("val_")]
    metrics = [name for name in names if name != "loss"]
    figure = Figure(figsize=(10, 3.6))
    loss_axes, metric_axes = figure.subplots(1, 2)
    x = [row["epoch"] for row in epochs]
    for axes, shown in ((loss_axes, ["loss"]), (metric_axes, metrics)):
        for index, name in enumerate(shown):
            color = f"C{index}"
            axes.plot(x, [row[name] for row in epochs], color=color, marker="o", label=name)
            if f"val_{name}" in epochs[0]:
                axes.plot(
                    x,
                    [row[f"val_{name}"] for row in epochs],
                    color=color,
                    linestyle="--",
                    marker="o",
                    label=f"val_{name}",
                )
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if shown:
            axes.legend(fontsize=8)
    loss_axes.set_title("loss")
    metric_axes.set_title("metrics")
    return _save(figure, path)


def quality_vs_size(points: Mapping[str, tuple[float, float]], metric: str, path: Path) -> Path:
    """One point per model variant: (zipped size in bytes, `metric`'s value). The size axis
    starts at zero so the distance between points shows the compression ratio."""
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for index, (name, (size, value)) in enumerate(points.items()):
        axes.scatter(
            [size / 1024],
            [value],
            s=70,
            color=f"C{index}",
            marker=_MARKERS[index % len(_MARKERS)],
            label=name,
            zorder=3,
        )
    axes.set_xlim(left=0, right=1.15 * max(size for size, _ in points.values()) / 1024)
    axes.margins(y=0.25)
    axes.set_xlabel("zipped size (KiB)")
    axes.set_ylabel(f"{metric} on eval rows")
    axes.set_title(f"{metric} vs size")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return _save(figure, path)
