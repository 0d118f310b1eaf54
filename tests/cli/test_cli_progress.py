"""The live progress display: the status line's rendering, and how it is shown on a terminal (refreshed in place)
and without one (a line per change, and at least one per --progress-interval). The moto suite
(test_cli_moto.py) checks the same lines against a real execution's history and its run summary."""

from __future__ import annotations

import io

from efs_backup_cli import planner, progress


def snapshot(**changes):
    values = dict(execution="manual-daily-20261128T080000Z", status="RUNNING", state="LaunchWorker",
                  elapsed_seconds=245.4, workers_total=4, workers_launched=4, workers_reported=1, parts_done=7,
                  files_scanned=1204, bytes_transferred=3 * 1024 ** 2 + 100 * 1024)
    values.update(changes)
    return progress.Snapshot(**values)


def test_the_line_says_elapsed_time_state_workers_parts_files_and_bytes():
    assert progress.render(snapshot(), planner.format_bytes) == (
        "[4m05s] RUNNING in LaunchWorker: workers 4 launched, 1/4 reported; parts 7 done (total known at finalize); "
        "1,204 files scanned; 3.1 MiB transferred")
    done = snapshot(status="SUCCEEDED", state=None, elapsed_seconds=7322, workers_reported=4, parts_done=31,
                    parts_total=31, workers_failed=0)
    assert progress.render(done, planner.format_bytes).startswith(
        "[2h02m02s] SUCCEEDED: workers 4 launched, 4/4 reported; parts 31/31 done;")
    failed = snapshot(status="FAILED", state=None, workers_failed=1)
    assert "workers 4 launched, 1/4 reported, 1 failed;" in progress.render(failed, planner.format_bytes)


def test_the_terminal_line_puts_the_counts_first():
    assert progress.render_compact(snapshot(parts_total=9, workers_failed=1), planner.format_bytes) == (
        "[4m05s] workers 1/4 reported, 4 launched, 1 failed; parts 7/9; 1,204 files; 3.1 MiB; RUNNING in LaunchWorker")


def test_durations_read_like_a_clock():
    assert [progress.duration(s) for s in (0, 59.9, 60, 245, 3600, 7322)] == [
        "0s", "59s", "1m00s", "4m05s", "1h00m00s", "2h02m02s"]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_without_a_terminal_a_line_per_change_and_one_per_interval():
    stream, clock = io.StringIO(), Clock()
    reporter = progress.Reporter(stream, planner.format_bytes, every=30, terminal=False, clock=clock)
    reporter.update(snapshot(elapsed_seconds=0))
    clock.now = 2
    reporter.update(snapshot(elapsed_seconds=2))  # nothing changed but the clock: no line
    clock.now = 4
    reporter.update(snapshot(elapsed_seconds=4, workers_reported=2))  # a change: a line
    clock.now = 33
    reporter.update(snapshot(elapsed_seconds=33, workers_reported=2))  # unchanged, but 29 s since the last line
    clock.now = 34
    reporter.update(snapshot(elapsed_seconds=34, workers_reported=2))  # 30 s since the last line: the heartbeat
    reporter.close()
    lines = stream.getvalue().splitlines()
    assert [line.split("]")[0] for line in lines] == ["  [0s", "  [4s", "  [34s"]
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_on_a_terminal_the_line_refreshes_in_place():
    stream = io.StringIO()
    reporter = progress.Reporter(stream, planner.format_bytes, terminal=True, clock=Clock(), width=79)
    reporter.update(snapshot(elapsed_seconds=1))
    reporter.update(snapshot(elapsed_seconds=3))
    assert stream.getvalue().count("\n") == 0, "one line, rewritten"
    assert stream.getvalue().count("\r") == 2
    assert stream.getvalue().endswith("\r[3s] workers 1/4 reported, 4 launched; parts 7; 1,204 files; 3.1 MiB; "
                                      "RUNNING i\x1b[K"), "the counts first: a narrow terminal cuts the state"
    reporter.message("queued")
    assert stream.getvalue().endswith("\x1b[K\nqueued\n"), "a message ends the refreshing line first"
    reporter.update(snapshot())
    assert len(stream.getvalue().rsplit("\r", 1)[1]) == 79 + len("\x1b[K"), "cut to the terminal: no wrapping"


def test_elapsed_time_never_runs_backwards_when_the_execution_ends_between_two_looks(monkeypatch):
    """Found by CI under load: a poll saw the execution RUNNING, then took the clock a moment later, after it had
    stopped; the next poll showed the (earlier) stop time: [0:17] RUNNING, then [0:16] SUCCEEDED. A running
    execution's elapsed time is taken just before it is described, never later than the stop time."""
    from datetime import datetime, timedelta, timezone

    from efs_backup_cli import executions

    started = datetime(2026, 11, 28, 11, 0, 0, tzinfo=timezone.utc)
    stopped = started + timedelta(seconds=16.5)
    now = [started.timestamp() + 16.0]
    monkeypatch.setattr(executions.time, "time", lambda: now[0])
    monkeypatch.setattr(executions.time, "sleep", lambda seconds: None)

    class StepFunctions:
        calls = 0

        def describe_execution(self, executionArn):
            StepFunctions.calls += 1
            if StepFunctions.calls == 1:  # running when asked; it stops at 16.5 s, while the answer travels
                now[0] = started.timestamp() + 17.0
                return {"name": "run-1", "status": "RUNNING", "startDate": started}
            return {"name": "run-1", "status": "SUCCEEDED", "startDate": started, "stopDate": stopped}

        def get_execution_history(self, executionArn, maxResults, nextToken=None):
            return {"events": []}

    class Deployment:
        def client(self, name):
            return StepFunctions()

    shown = []

    class Recorder:
        def update(self, snap):
            shown.append(snap.elapsed_seconds)

        def close(self):
            pass

    executions.wait(Deployment(), "arn:run-1", timeout=None, reporter=Recorder())
    assert len(shown) == 2 and shown == sorted(shown), shown
    assert shown[-1] == 16.5
