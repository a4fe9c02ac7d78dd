"""Gates that the eval split can resolve: bounds no finer than its rows can measure.

Invariant: before a local run builds its pipeline, every unset row-counted gate bound
(accuracy drops vs the uncompressed and the blessed model, the TFLite agreement) is
filled in from the expected eval rows (`ThresholdsConfig.fitted_to_eval_rows`, GATE_RESOLUTION_ROWS), a set
bound finer than one eval row is named in a note, and a run whose eval split is too
small to tell a good model from a bad one is refused before any TFX work.

Reason: on 32 eval rows one row is 3.1 pt, so the 0.5 pt default refused every
compressed model that changed one prediction, and on 10 rows a gate would bless on
evidence too thin to mean anything. TFMA's gates compare the two models' metrics, not
their per-row pairs, so a paired test (McNemar's) cannot run inside them; a bound
that follows the row count, stated with its resolution, keeps them honest. The rows
are estimated from the pre-flight row count and the hash split's shares (the split
itself happens in ExampleGen); 1.5 rows' worth lets one row change, not two, while
the real count stays within a third of the estimate. The summary states each gate's
resolution from StatisticsGen's exact count. `fitted_to_data` is the one sequence a
run and the CLI's early check share: classes (pipeline/classes.py), then these gates.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.config import ThresholdsConfig
from models.errors import UserError
from pipeline.classes import fit_classes
from pipeline.config import LeanlineConfig
from pipeline.inputs.checks import CheckedInputs

# Fewer expected eval rows than this, and one row is worth over 5 pt: too thin to gate.
MIN_EVAL_ROWS = 20


@dataclass(frozen=True)
class FittedGates:
    config: LeanlineConfig
    notes: tuple[str, ...]


def fitted_to_data(config: LeanlineConfig, checked: CheckedInputs) -> FittedGates:
    """`config` fitted to what pre-flight read: the classes first (they may pick other
    metrics), then the gates of those metrics; with both steps' notes."""
    classes = fit_classes(config, checked.label_values)
    gates = fit_gates(classes.config, checked.rows)
    return FittedGates(gates.config, (*classes.notes, *gates.notes))


def expected_eval_rows(config: LeanlineConfig, rows: int) -> float:
    split = config.data.split
    return rows * split.eval / (split.train + split.eval)


def agreement_rows(config: LeanlineConfig, eval_rows: float) -> float:
    """The eval rows the TFLite/SavedModel agreement is counted on (the report's)."""
    return min(eval_rows, config.compression.report_examples)


def fit_gates(config: LeanlineConfig, rows: int | None) -> FittedGates:
    """`config` with its gates fitted to `rows` input rows (None: not counted, TFRecord
    input; the defaults then stand)."""
    if rows is None:
        return FittedGates(config, ())
    eval_rows = expected_eval_rows(config, rows)
    split = config.data.split
    if eval_rows < MIN_EVAL_ROWS:
        raise UserError(
            f"data: {rows} rows give the eval split about {eval_rows:.0f} rows "
            f"(data.split train {split.train} : eval {split.eval}), where one row is worth "
            f"{100 / max(eval_rows, 1):.1f} pt: too few for the gates to tell a good model "
            f"from a bad one. Bring more rows, or give the eval split a larger share (e.g. "
            f"data.split: {{train: 2, eval: 1}}) so that it holds {MIN_EVAL_ROWS} or more"
        )
    thresholds = config.evaluation.thresholds
    fitted = thresholds.fitted_to_eval_rows(
        round(eval_rows),
        round(agreement_rows(config, eval_rows)),
        classifier=not config.model.is_regression,
    )
    notes = tuple(_finer_than_a_row(thresholds, eval_rows))
    return FittedGates(config.with_overrides(evaluation={"thresholds": fitted.model_dump()}), notes)


def _finer_than_a_row(thresholds: ThresholdsConfig, eval_rows: float) -> list[str]:
    """Notes on set accuracy bounds below one eval row's worth: honoured, not silent."""
    if thresholds.lower_is_better:
        return []
    row = 1 / eval_rows
    return [
        f"evaluation.thresholds.{key} {bound} is finer than one of the about "
        f"{eval_rows:.0f} eval rows ({100 * row:.2f} pt): a compressed model that changes "
        "one prediction net is refused; unset it to let the bound follow the eval split"
        for key in ("max_drop_vs_uncompressed", "max_drop_vs_blessed")
        if (bound := getattr(thresholds, key)) is not None and bound < row
    ]


def resolution_words(config: LeanlineConfig, eval_rows: int) -> list[str]:
    """Each row-counted gate's bound in eval rows, for the summary: what it can tell."""
    if not eval_rows:
        return []
    thresholds = config.evaluation.thresholds
    lines = []
    if not thresholds.lower_is_better:
        row = 1 / eval_rows
        for gate, (_, bound) in (
            ("vs uncompressed", thresholds.vs_uncompressed),
            ("vs last pushed", thresholds.vs_blessed),
        ):
            lines.append(
                f"{gate}: a drop of at most {100 * bound:.2f} pt = {bound / row:.1f} of "
                f"{eval_rows} eval rows (one row {100 * row:.2f} pt)"
            )
    if not config.model.is_regression:
        rows = agreement_rows(config, eval_rows)
        allowed = (1 - thresholds.tflite_agreement) * rows
        lines.append(
            f"TFLite vs SavedModel: at least {100 * thresholds.tflite_agreement:.2f}% of "
            f"{rows:.0f} eval rows agree ({allowed:.1f} rows may differ)"
        )
    return lines
