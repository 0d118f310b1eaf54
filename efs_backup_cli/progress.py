"""What a running execution is doing, as one line: read from its Step Functions history, shown while the CLI waits.

Everything shown is read, never guessed: the execution's status and the state it is in (the newest state entered
and not yet left), the time since it started, the workers launched (worker states entered) and reported (worker
states left with the engine's ``work`` report: parts, files scanned, bytes transferred), and, once a finalize step
has reported, the run's total of parts. The engine's workers report once, when their share is done, so the part,
file and byte counts grow worker by worker; the total of parts is known only when the run is finalized (the
workers split parts as they go). A worker that is still working shows as launched, not reported.

On a terminal a compact line refreshes in place (carriage return, clear to the end of the line, cut to the
terminal's width so it never wraps); otherwise a plain line is printed whenever something but the clock changed,
and at least every ``every`` seconds, so a log shows the CLI is alive and how long the run has taken.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, TextIO

TERMINAL_LINE_WIDTH = 160  # when the terminal's width is unknown
DEFAULT_EVERY_SECONDS = 30.0


@dataclass
class Snapshot:
    """One look at an execution."""

    execution: str
    status: str = "RUNNING"
    state: Optional[str] = None  # the newest state entered and not left (None once the execution ended)
    elapsed_seconds: float = 0.0
    workers_total: Optional[int] = None
    workers_launched: int = 0
    workers_reported: int = 0
    workers_failed: int = 0
    parts_done: int = 0
    parts_total: Optional[int] = None
    files_scanned: int = 0
    bytes_transferred: int = 0
    reports: List[Dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "reports"}


def read(events: Iterable[Dict[str, Any]], execution: str, worker_states, *, started: Optional[float] = None,
         now: Optional[float] = None, status: str = "RUNNING", workers_total: Optional[int] = None) -> Snapshot:
    """A Snapshot from the execution history's events (oldest first)."""
    snap = Snapshot(execution=execution, status=status, workers_total=workers_total)
    active: List[str] = []  # states entered and not yet left, in entry order
    for event in events:
        entered = event.get("stateEnteredEventDetails")
        exited = event.get("stateExitedEventDetails")
        if entered:
            active.append(entered.get("name"))
            if entered.get("name") in worker_states:
                snap.workers_launched += 1
        elif exited:
            name = exited.get("name")
            if name in active:
                del active[len(active) - 1 - active[::-1].index(name)]
            report = _json(exited.get("output"))
            if name in worker_states and isinstance(report, dict) and "bytes_transferred" in report:
                snap.workers_reported += 1
                snap.parts_done += int(report.get("parts") or 0)
                snap.files_scanned += int(report.get("files_scanned") or 0)
                snap.bytes_transferred += int(report.get("bytes_transferred") or 0)
                snap.reports.append(report)
            elif isinstance(report, dict) and isinstance(report.get("summary"), dict) \
                    and isinstance(report["summary"].get("parts"), int):
                snap.parts_total = report["summary"]["parts"]  # the finalize step's run summary
        elif event.get("type") in ("TaskFailed", "TaskTimedOut") and active and active[-1] in worker_states:
            snap.workers_failed += 1
        succeeded = event.get("taskSucceededEventDetails")
        if succeeded and active and active[-1] not in worker_states:
            summary = _json(succeeded.get("output"))
            if isinstance(summary, dict) and isinstance(summary.get("parts"), int) and "run_id" in summary:
                snap.parts_total = summary["parts"]
    snap.state = active[-1] if active and status == "RUNNING" else None
    if started is not None:
        snap.elapsed_seconds = max(0.0, (now if now is not None else time.time()) - started)
    return snap


def _json(text: Optional[str]) -> Any:
    try:
        return json.loads(text or "null")
    except ValueError:
        return None


def duration(seconds: float) -> str:
    """12s, 4m05s, 2h07m05s: the clock of a run, to the second."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def render(snap: Snapshot, format_bytes) -> str:
    """The status line: '[4m05s] RUNNING in LaunchWorker: workers 2 launched, 1/2 reported; parts 7 done; 1,204
    files scanned; 3.1 MiB transferred'."""
    where = f" in {snap.state}" if snap.state else ""
    total = "?" if snap.workers_total is None else str(snap.workers_total)
    workers = f"workers {snap.workers_launched} launched, {snap.workers_reported}/{total} reported"
    if snap.workers_failed:
        workers += f", {snap.workers_failed} failed"
    parts = f"parts {snap.parts_done}/{snap.parts_total} done" if snap.parts_total is not None \
        else f"parts {snap.parts_done} done (total known at finalize)"
    return (f"[{duration(snap.elapsed_seconds)}] {snap.status}{where}: {workers}; {parts}; "
            f"{snap.files_scanned:,} files scanned; {format_bytes(snap.bytes_transferred)} transferred")


def render_compact(snap: Snapshot, format_bytes) -> str:
    """The terminal's refreshed line: the counts first, the state last, so a narrow terminal cuts only the state."""
    total = "?" if snap.workers_total is None else str(snap.workers_total)
    failed = f", {snap.workers_failed} failed" if snap.workers_failed else ""
    parts = f"{snap.parts_done}/{snap.parts_total}" if snap.parts_total is not None else f"{snap.parts_done}"
    where = f" in {snap.state}" if snap.state else ""
    return (f"[{duration(snap.elapsed_seconds)}] workers {snap.workers_reported}/{total} reported, "
            f"{snap.workers_launched} launched{failed}; parts {parts}; {snap.files_scanned:,} files; "
            f"{format_bytes(snap.bytes_transferred)}; {snap.status}{where}")


class Reporter:
    """Shows Snapshots on ``stream``: refreshed in place on a terminal, else a line per change and at least one
    every ``every`` seconds."""

    def __init__(self, stream: TextIO, format_bytes, *, every: float = DEFAULT_EVERY_SECONDS,
                 terminal: Optional[bool] = None, clock=time.monotonic, width: Optional[int] = None) -> None:
        self.stream = stream
        self.format_bytes = format_bytes
        self.every = every
        self.terminal = stream.isatty() if terminal is None else terminal
        self.clock = clock
        # A refreshed line must not wrap: carriage return goes back to the start of the last row only.
        self.width = width or max(20, shutil.get_terminal_size((TERMINAL_LINE_WIDTH + 1, 24)).columns - 1)
        self._last_key = None
        self._last_time: Optional[float] = None
        self._open_line = False

    def update(self, snap: Snapshot) -> None:
        if self.terminal:
            line = render_compact(snap, self.format_bytes)
            self.stream.write("\r" + line[:self.width] + "\x1b[K")
            self.stream.flush()
            self._open_line = True
            return
        line = render(snap, self.format_bytes)
        key = {k: v for k, v in snap.to_json().items() if k != "elapsed_seconds"}
        now = self.clock()
        if key != self._last_key or self._last_time is None or now - self._last_time >= self.every:
            print("  " + line, file=self.stream, flush=True)
            self._last_key, self._last_time = key, now

    def message(self, text: str) -> None:
        """A line of its own (ends a refreshing line first)."""
        self.close()
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._open_line:
            self.stream.write("\n")
            self.stream.flush()
            self._open_line = False
