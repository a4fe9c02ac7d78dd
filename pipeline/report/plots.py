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


def search_frontier(
    trials: Sequence[Mapping[str, object]],
    float_point: tuple[float, float],
    metric: str,
    path: Path,
    *,
    lower_is_better: bool,
) -> Path:
    """Every measured trial of the compression search as (zipped size, `metric`'s value on
    the validation rows), the size-quality frontier through them, the trained model's
    point, and the chosen trial ringed. An error's frontier falls, an accuracy's rises."""
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    measured = sorted(
        (t for t in trials if t.get("zipped_bytes") is not None),
        key=lambda t: t["zipped_bytes"],
    )
    for within, color, label in ((True, "C2", "within budget"), (False, "C3", "over budget")):
        shown = [t for t in measured if bool(t["within_budget"]) == within]
        axes.scatter(
            [t["zipped_bytes"] / 1024 for t in shown],
            [t["quality"] for t in shown],
            s=40,
            color=color,
            label=label,
            zorder=3,
        )
    # The frontier: each trial better than every smaller one.
    sign = -1 if lower_is_better else 1
    frontier, best = [], None
    for trial in measured:
        if best is None or sign * trial["quality"] > sign * best:
            frontier.append(trial)
            best = trial["quality"]
    axes.step(
        [t["zipped_bytes"] / 1024 for t in frontier],
        [t["quality"] for t in frontier],
        where="post",
        color="0.5",
        linewidth=1,
        label="frontier",
    )
    for trial in measured:
        if trial.get("chosen"):
            axes.scatter(
                [trial["zipped_bytes"] / 1024],
                [trial["quality"]],
                s=220,
                facecolors="none",
                edgecolors="k",
                linewidths=1.5,
                label="chosen",
                zorder=4,
            )
    size, value = float_point
    axes.scatter(
        [size / 1024], [value], s=70, marker="D", color="C0", label="trained model (float)"
    )
    axes.set_xlim(left=0, right=1.1 * max([size] + [t["zipped_bytes"] for t in measured]) / 1024)
    axes.margins(y=0.2)
    axes.set_xlabel("zipped TFLite size (KiB)")
    axes.set_ylabel(f"{metric} on validation rows")
    axes.set_title("compression search: size vs quality")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    return _save(figure, path)
