"""Progress of a local run, read from what the run writes anyway: MLMD and Keras' lines.

The runner blocks the main thread, so a daemon thread polls the SQLite store
(read-only) about once a second and reports each component's start and end:

    [  12.3s] Transform started
    [  40.1s] Transform complete (27.8 s)

Times come from MLMD's own timestamps, so a one-second poll does not blur them. The
lines are also log records (`leanline.progress`), so the run's log file holds them.

On a terminal the lines scroll above a bar per running component, filled against the
seconds its last completed execution took (MLMD keeps them; none on a first run), and a
bar for the Keras fit running in it (training, each fine-tuning and distillation of the
compression search), with the time left at the pace of its epochs so far. Elsewhere (CI,
log files) there are the plain lines only.

Model code knows nothing of this: the epochs are Keras' own `Epoch 3/20` lines, which it
logs through absl while a run is inside pipeline.run_log. Reading what the run writes
anyway keeps models/ free of any progress API and adds no file, thread or callback to a
component. What writes nothing as it goes has the component's bar alone: the search's
trials (it records them at its end) and Beam's stages (the FnApiRunner logs them only at
DEBUG level, and never how many there are).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.text import Text

from pipeline.summary import STATE_NAMES, node_id, open_store

POLL_SECONDS = 1.0
STARTED = "started"
_ENDED = {
    state: STATE_NAMES[state]
    for state in (
        metadata_store_pb2.Execution.COMPLETE,
        metadata_store_pb2.Execution.CACHED,
        metadata_store_pb2.Execution.FAILED,
        metadata_store_pb2.Execution.CANCELED,
    )
}
_STYLES = {STARTED: "", "complete": "green", "cached": "blue", "failed": "bold red"}
_LOG = logging.getLogger("leanline.progress")
# What tf_keras's ProgbarLogger logs at verbose=2 (every fit of leanline's): an epoch's
# start, when a fit has more than one, and its end ("4/4 - 0s - loss: 0.6931 - ...").
KERAS_EPOCH = re.compile(r"Epoch (\d+)/(\d+)")
KERAS_EPOCH_END = re.compile(r"\s*\d+/\d+ - ")


@dataclasses.dataclass(frozen=True)
class ComponentEvent:
    """A component started or ended, `at` seconds after the progress began."""

    component: str
    state: str  # "started" or how it ended: complete, cached, failed, canceled
    at: float
    # How long the component ran; None for starts and cache hits.
    seconds: float | None = None
    # For starts: how long its last completed execution took (None: it never completed).
    estimate: float | None = None

    def line(self) -> str:
        text = f"[{self.at:7.1f}s] {self.component} {self.state}"
        return text if self.seconds is None else f"{text} ({self.seconds:.1f} s)"


class RunWatcher:
    """Reads the component starts and ends of runs that began at or after `since_ms`."""

    def __init__(self, metadata_path: Path, since_ms: int):
        self._metadata_path = metadata_path
        self._since_ms = since_ms
        self._store: mlmd.MetadataStore | None = None
        self._components: dict[int, str] = {}  # execution id -> component id
        self._reported: dict[int, str] = {}  # execution id -> last state reported

    def poll(self) -> list[ComponentEvent]:
        """What changed since the last poll, oldest first; nothing while the store is
        not there yet or is busy (the next poll catches up)."""
        try:
            store = self._open()
            executions = [] if store is None else self._executions(store)
            events = [event for e in executions for event in self._changes(store, e)]
        except (RuntimeError, mlmd.errors.StatusError):
            return []
        return sorted(events, key=lambda event: event.at)

    def _open(self) -> mlmd.MetadataStore | None:
        if self._store is None and self._metadata_path.exists():
            self._store = open_store(self._metadata_path)
        return self._store

    def _executions(self, store: mlmd.MetadataStore) -> list[metadata_store_pb2.Execution]:
        runs = [
            context
            for context in store.get_contexts_by_type("pipeline_run")
            if context.create_time_since_epoch >= self._since_ms
        ]
        return [e for run in runs for e in store.get_executions_by_context(run.id)]

    def _seconds_since_start(self, epoch_ms: int) -> float:
        return max(epoch_ms - self._since_ms, 0) / 1000

    def _changes(
        self, store: mlmd.MetadataStore, execution: metadata_store_pb2.Execution
    ) -> list[ComponentEvent]:
        reported = self._reported.get(execution.id)
        ended = _ENDED.get(execution.last_known_state)
        if reported is not None and (reported != STARTED or ended is None):
            return []
        if execution.id not in self._components:
            self._components[execution.id] = node_id(store, execution.id)
        component = self._components[execution.id]
        started_at = self._seconds_since_start(execution.create_time_since_epoch)
        events = []
        # A cache hit never really starts; a component that ran entirely between
        # two polls still gets its start line.
        if reported is None and ended != "cached":
            estimate = _last_seconds(store, execution)
            events.append(ComponentEvent(component, STARTED, started_at, estimate=estimate))
        if ended is not None:
            ended_at = self._seconds_since_start(execution.last_update_time_since_epoch)
            seconds = None if ended == "cached" else ended_at - started_at
            events.append(ComponentEvent(component, ended, ended_at, seconds))
        self._reported[execution.id] = events[-1].state
        return events


def _last_seconds(
    store: mlmd.MetadataStore, execution: metadata_store_pb2.Execution
) -> float | None:
    """How long the last execution of the same component before `execution` took, of
    those that completed (cache hits and failures say nothing of its duration)."""
    earlier = [
        other
        for context in store.get_contexts_by_execution(execution.id)
        if context.type == "node"
        for other in store.get_executions_by_context(context.id)
        if other.last_known_state == metadata_store_pb2.Execution.COMPLETE
        and other.create_time_since_epoch < execution.create_time_since_epoch
    ]
    if not earlier:
        return None
    last = max(earlier, key=lambda other: other.create_time_since_epoch)
    return (last.last_update_time_since_epoch - last.create_time_since_epoch) / 1000


class _PlainLines:
    """One line per event: for logs and CI."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def __enter__(self) -> _PlainLines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def show(self, events: list[ComponentEvent]) -> None:
        for event in events:
            print(event.line(), file=self._stream, flush=True)


class _Spinner(SpinnerColumn):
    """Spins while the task is shown, also past its estimate (rich's stops there)."""

    def render(self, task: Task) -> RenderableType:
        return self.spinner.render(task.get_time())


class _Times(ProgressColumn):
    """Seconds so far, and what the task's `estimate` of its whole duration leaves."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        estimate = task.fields.get("estimate")
        if estimate is None:
            return Text(f"{elapsed:.0f} s", style="dim")
        if elapsed > estimate:
            return Text(f"{elapsed:.0f} s, past the estimate of {estimate:.0f} s", style="dim")
        return Text(f"{elapsed:.0f} s, about {estimate - elapsed:.0f} s left", style="dim")


class LiveDisplay:
    """On a terminal: the same lines, scrolling above a bar per running component and
    one for the Keras fit running in it (see the module docstring)."""

    def __init__(self, console: Console):
        self._console = console
        self.progress = Progress(
            _Spinner(),
            TextColumn("{task.description}"),
            BarColumn(),
            _Times(),
            console=console,
            refresh_per_second=4,
            transient=True,
        )
        self._lock = threading.Lock()
        self._components: dict[str, TaskID] = {}
        self._fit: TaskID | None = None

    def __enter__(self) -> LiveDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def show(self, events: list[ComponentEvent]) -> None:
        """Prints `events` and moves the components' bars on (called on every poll)."""
        with self._lock:
            for event in events:
                self._console.print(Text(event.line(), style=_STYLES.get(event.state, "")))
                if event.state == STARTED:
                    self._components[event.component] = self.progress.add_task(
                        event.component, total=event.estimate, estimate=event.estimate
                    )
                elif event.component in self._components:
                    self.progress.remove_task(self._components.pop(event.component))
                    self._end_fit()
            running = set(self._components.values())
            for task in self.progress.tasks:
                if task.id in running:
                    self.progress.update(task.id, completed=task.elapsed)

    def epoch_started(self, number: int, epochs: int) -> None:
        """Keras began epoch `number` of `epochs`; epoch 1 begins a new fit."""
        with self._lock:
            if number == 1 or self._fit is None:
                self._end_fit()
                self._fit = self.progress.add_task("", total=epochs)
            self._fit_at(number - 1, f"  epoch {number}/{epochs}")

    def epoch_ended(self) -> None:
        """Keras ended an epoch of the fit shown; a finished fit's bar goes."""
        with self._lock:
            if self._fit is None:
                return  # a one-epoch fit (Keras announces no epochs), or an evaluation
            fit = self._task(self._fit)
            if fit.completed + 1 >= fit.total:
                self._end_fit()
            else:
                self._fit_at(fit.completed + 1, fit.description)

    def _task(self, task_id: TaskID) -> Task:
        return next(task for task in self.progress.tasks if task.id == task_id)

    def _fit_at(self, done: float, description: str) -> None:
        """The fit shown has `done` epochs behind it; at their pace, it takes `estimate`."""
        fit = self._task(self._fit)
        estimate = fit.elapsed / done * fit.total if done else None
        self.progress.update(self._fit, description=description, completed=done, estimate=estimate)

    def _end_fit(self) -> None:
        if self._fit is not None:
            self.progress.remove_task(self._fit)
            self._fit = None


class KerasEpochs(logging.Handler):
    """Feeds Keras' epoch lines, which it logs through absl in a run, to a display."""

    def __init__(self, started: Callable[[int, int], None], ended: Callable[[], None]):
        super().__init__(logging.INFO)
        self._started = started
        self._ended = ended

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if epoch := KERAS_EPOCH.fullmatch(message):
            self._started(int(epoch[1]), int(epoch[2]))
        elif KERAS_EPOCH_END.match(message):
            self._ended()


@contextlib.contextmanager
def run_progress(
    metadata_path: Path, stream: TextIO | None = None, poll_seconds: float = POLL_SECONDS
) -> Iterator[None]:
    """Reports component starts and ends of the runs that begin inside the block.

    The store may not exist yet when the block starts; polling begins when it does.
    """
    stream = stream or sys.stdout
    watcher = RunWatcher(metadata_path, since_ms=int(time.time() * 1000))
    console = Console(file=stream)
    display = LiveDisplay(console) if console.is_terminal else _PlainLines(stream)
    stop = threading.Event()

    def show(events: list[ComponentEvent]) -> None:
        for event in events:
            _LOG.info(event.line())
        display.show(events)

    def poll_until_stopped() -> None:
        while not stop.wait(poll_seconds):
            show(watcher.poll())

    poller = threading.Thread(target=poll_until_stopped, name="leanline-progress", daemon=True)
    with contextlib.ExitStack() as stack:
        stack.enter_context(display)
        if isinstance(display, LiveDisplay):
            epochs = KerasEpochs(display.epoch_started, display.epoch_ended)
            absl_logger = logging.getLogger("absl")
            absl_logger.addHandler(epochs)
            stack.callback(absl_logger.removeHandler, epochs)
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()
            show(watcher.poll())  # what ended after the last poll
