"""Worker heartbeat, stall and task timeouts are bounded together (issue 11, item 4)."""

from __future__ import annotations

import pytest

from cdk_helpers import synthesize
from settings.load import load_config
from settings.model import MIN_HEARTBEAT_TIMEOUT_SECONDS, WORKER_FIRST_HEARTBEAT_SECONDS, ConfigError
from settings.workers import emulated_worker_boot
from test_cdk_config import context, single_problem, valid_environment


def test_defaults_leave_room_for_boot_and_fail_a_hung_worker_within_minutes():
    workers = load_config(context()).workers
    assert workers.heartbeat_timeout_seconds == 600 and workers.stall_seconds == 300
    assert workers.heartbeat_timeout_seconds >= 2 * WORKER_FIRST_HEARTBEAT_SECONDS
    # A hung worker fails after stall + heartbeat timeout: 15 minutes, against a 24 h task timeout.
    assert workers.stall_seconds + workers.heartbeat_timeout_seconds == 900
    assert workers.timeout_hours == 24


@pytest.mark.parametrize("value", [10, 60, 90, 179, "120"])
def test_a_heartbeat_timeout_no_booting_instance_can_meet_is_refused_with_the_reason(value):
    problem = single_problem(context(valid_environment(worker_heartbeat_timeout_seconds=value)))
    assert problem.startswith(f"worker_heartbeat_timeout_seconds: {value!r} is out of range")
    assert "after boot, cloud-init and the script download" in problem
    assert f"from {MIN_HEARTBEAT_TIMEOUT_SECONDS} to 3600" in problem


def test_a_heartbeat_timeout_of_half_the_task_timeout_or_more_is_refused():
    ok = load_config(context(valid_environment(worker_heartbeat_timeout_seconds=1800, worker_timeout_hours=1)))
    assert ok.workers.heartbeat_timeout_seconds == 1800
    problem = single_problem(context(valid_environment(worker_heartbeat_timeout_seconds=3600,
                                                       worker_timeout_hours=1)))
    assert problem.startswith("worker_heartbeat_timeout_seconds: 3600 is more than half of worker_timeout_hours")
    assert "below the task timeout" in problem


@pytest.mark.parametrize("value", [0, 30, 119, 3601, "soon"])
def test_stall_limit_is_bounded(value):
    problem = single_problem(context(valid_environment(worker_stall_seconds=value)))
    assert problem.startswith(f"worker_stall_seconds: {value!r}")


def test_the_emulator_seam_is_scoped_to_its_block():
    low = context(valid_environment(worker_heartbeat_timeout_seconds=20))
    with emulated_worker_boot(5):
        assert load_config(low).workers.heartbeat_timeout_seconds == 20
    with pytest.raises(ConfigError):
        load_config(low)


def test_the_user_data_carries_the_stall_limit_and_the_state_machine_the_heartbeat(tmp_path):
    synth = synthesize("example", tmp_path, worker_stall_seconds="240", worker_heartbeat_timeout_seconds="420")
    head = synth.stack.launch_template.bootstrap_pieces()["head"]
    assert 'export EFS_BACKUP_STALL_SECONDS="${EFS_BACKUP_STALL_SECONDS:-240}"' in head
    text = str(synth.template_json)
    assert '\\"HeartbeatSeconds\\":420' in text or '"HeartbeatSeconds":420' in text


def test_the_documented_probe_period_is_the_engines():
    """config documents (and bounds worker_stall_seconds by) the engine's progress period: they must agree."""
    from settings.model import ENGINE_PROGRESS_SECONDS, MIN_STALL_SECONDS

    from efs_backup_engine.lock import PROGRESS_EVERY

    assert PROGRESS_EVERY == ENGINE_PROGRESS_SECONDS
    assert MIN_STALL_SECONDS >= 8 * PROGRESS_EVERY  # several probes, plus one NFS retry (60 s), per stall window
