"""The log file of a local run: `<output>/logs/run-<time>.log`, written whatever the
terminal shows.

While a run is inside `run_log`, every log record at INFO and above, from every logger
(TensorFlow, TFX, Beam, absl, leanline's progress lines, and Keras' epoch lines, which
Keras then logs through absl instead of printing them), goes to that file; a failed run's
trace is logged last. What reaches the terminal is the CLI's choice (--verbose shows the
same records, as TF, TFX and absl set up their handlers), not this module's, so the full
story of a quiet run is on disk and never in the way. Native (C++) writes to file
descriptor 2 bypass Python logging and are not in the file.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from pathlib import Path

import tf_keras

from pipeline.layout import LOG_DIR

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def run_log(output_dir: Path) -> Iterator[Path]:
    """Logs the block's records to a new file under `output_dir`/logs; yields its path."""

    log_dir = output_dir / LOG_DIR
    log_dir.mkdir(parents=True, exist_ok=True)
    # Microseconds: runs in one output directory may start within the same second.
    path = log_dir / f"run-{datetime.datetime.now():%Y%m%d-%H%M%S-%f}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root, absl_logger = logging.getLogger(), logging.getLogger("absl")
    levels = root.level, absl_logger.level
    interactive = tf_keras.utils.is_interactive_logging_enabled()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    absl_logger.setLevel(logging.INFO)
    # Keras' epoch lines become absl records: in this file and the progress display
    # (pipeline.progress), on the terminal only where log records are.
    tf_keras.utils.disable_interactive_logging()
    try:
        yield path
    finally:
        if interactive:
            tf_keras.utils.enable_interactive_logging()
        root.setLevel(levels[0])
        absl_logger.setLevel(levels[1])
        root.removeHandler(handler)
        handler.close()
