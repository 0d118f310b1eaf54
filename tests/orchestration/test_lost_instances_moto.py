"""End to end in moto, the scenarios of test_orchestration_moto.py that wait on real heartbeat timeouts: a worker
that never reports (its run fails on the timeout, the failure path's abort releases the lock, and a second execution
meanwhile is refused without launching anything), and an abort instance that never reports either (terminated, the
failure still recorded and notified).

They need nothing the other scenarios leave behind, so they run in a world of their own, built the same way
(scenario_world: the same deployment, heartbeat timeout and source tree): their minute of waiting then overlaps the
other scenarios instead of adding to the longest file of the suite.
"""

from __future__ import annotations

import json
import time

import pytest

from test_orchestration_moto import (HEARTBEAT_TIMEOUT, assert_all_terminated, history, notifications, roles,
                                     scenario_world, start, wait)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with scenario_world(tmp_path_factory) as w:
        yield w


def test_a_lost_worker_times_out_and_a_second_execution_meanwhile_is_refused(world):
    world.fleet.should_run = lambda instance: not (instance.execution == "run-lost" and instance.role == "work")
    try:
        lost = start(world, "run-lost", interval="daily", workers=1)
        deadline = time.time() + 20
        while not world.fleet.of_execution("run-lost"):
            assert time.time() < deadline, "no instance launched"
            time.sleep(0.2)
        second = wait(world, start(world, "run-second", interval="daily"))
        assert second["status"] == "SUCCEEDED"
        assert json.loads(second["output"])["outcome"] == "already-running"
        assert world.fleet.of_execution("run-second") == [], "the refused execution launched nothing"
        assert world.sfn.describe_execution(executionArn=lost)["status"] == "RUNNING", "and disturbed nothing"
        described = wait(world, lost, timeout=HEARTBEAT_TIMEOUT * 6)
    finally:
        world.fleet.should_run = lambda instance: True
    assert described["status"] == "FAILED"
    assert roles(world, "run-lost") == ["abort", "work"], "the failure path releases the lock with abort"
    assert_all_terminated(world, "run-lost")
    (record,) = history(world, "run-lost")
    assert record["status"] == "failed" and "Timeout" in record["error"]
    summary = json.loads(record["summary"])
    # abort's own account of the run: here the only worker never started, so nothing was ever prepared
    # (with a prepared run it lists every failed or unfinished part: tests/engine/test_steps.py)
    assert summary["status"] == "failed" and "stopped before finalize" in summary["aborted"]
    assert "never prepared" in summary["note"]
    (note,) = notifications(world)
    assert note["subject"].endswith("daily: FAILED") and "Timeout" in note["message"]
    assert "stopped before finalize" in note["message"]


def test_an_abort_instance_that_never_reports_is_terminated_too(world):
    """The failure path's own instance can be lost as well: it is terminated, and the failure still recorded."""
    world.fleet.should_run = lambda instance: instance.execution != "run-abort-lost"
    try:
        described = wait(world, start(world, "run-abort-lost", interval="daily", workers=1),
                         timeout=HEARTBEAT_TIMEOUT * 8)
    finally:
        world.fleet.should_run = lambda instance: True
    assert described["status"] == "FAILED"
    assert roles(world, "run-abort-lost") == ["abort", "work"]
    assert_all_terminated(world, "run-abort-lost")
    (record,) = history(world, "run-abort-lost")
    assert record["status"] == "failed" and "Timeout" in record["error"]
    (note,) = notifications(world)
    assert note["subject"].endswith("daily: FAILED")
