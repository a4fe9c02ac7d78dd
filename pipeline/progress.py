"""Progress of a local run, read from MLMD while LocalDagRunner works.

The runner blocks the main thread, so a daemon thread polls the SQLite store
(read-only) about once a second and reports each component's start and end:

    [  12.3s] Transform started
    [  40.1s] Transform complete (27.8 s)

On a terminal the lines scroll above a live spinner listing what is running;
elsewhere (CI, log files) they are plain lines. Times come from MLMD's own
timestamps, so a one-second poll does not blur them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import ml_metadata as mlmd
from ml_metadata.proto import metadata_store_pb2
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
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


@dataclasses.dataclass(frozen=True)
class ComponentEvent:
    """A component started or ended, `at` seconds after the progress began."""

    component: str
    state: str  # "started" or how it ended: complete, cached, failed, canceled
    at: float
    # How long the component ran; None for starts and cache hits.
    seconds: float | None = None

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
            events.append(ComponentEvent(component, STARTED, started_at))
        if ended is not None:
            ended_at = self._seconds_since_start(execution.last_update_time_since_epoch)
            seconds = None if ended == "cached" else ended_at - started_at
            events.append(ComponentEvent(component, ended, ended_at, seconds))
        self._reported[execution.id] = events[-1].state
        return events


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


class _LiveDisplay:
    """On a terminal: the same lines, scrolling above a spinner naming what is running."""

    def __init__(self, console: Console):
        self._console = console
        self._live = Live(self, console=console, refresh_per_second=4, transient=True)
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._running: dict[str, float] = {}  # component -> its start, on the monotonic clock

    def __enter__(self) -> _LiveDisplay:
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def show(self, events: list[ComponentEvent]) -> None:
        with self._lock:
            for event in events:
                if event.state == STARTED:
                    self._running[event.component] = self._started + event.at
                else:
                    self._running.pop(event.component, None)
        for event in events:
            self._console.print(Text(event.line(), style=_STYLES.get(event.state, "")))

    def __rich__(self) -> RenderableType:
        with self._lock:
            running = dict(self._running)
        now = time.monotonic()
        if not running:
            return Spinner("dots", Text(f"{now - self._started:.0f} s", style="dim"))
        return Group(
            *(
                Spinner("dots", Text(f"{component} ({now - since:.0f} s)"))
                for component, since in running.items()
            )
        )


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
    display = _LiveDisplay(console) if console.is_terminal else _PlainLines(stream)
    stop = threading.Event()

    def poll_until_stopped() -> None:
        while not stop.wait(poll_seconds):
            display.show(watcher.poll())

    poller = threading.Thread(target=poll_until_stopped, name="leanline-progress", daemon=True)
    with display:
        poller.start()
        try:
            yield
        finally:
            stop.set()
            poller.join()
            display.show(watcher.poll())  # what ended after the last poll
