"""efs_backup_worker.task: the task pointer and the task object, fed what a state machine writes and what it must
never be (misspelt or missing fields, wrong types, out-of-range numbers, injection attempts, oversized values)."""

import json

import pytest

from efs_backup_contract.intervals import INTERVALS
from efs_backup_contract.limits import MAX_RETAIN, MAX_STREAMS_PER_WORKER, MAX_WORKERS
from efs_backup_contract.task import BACKUP_ROLES, RESTORE_ROLES, ROLES, WORK_ROLES, task_fields
from efs_backup_worker.task import TaskRefused, object_version, parse_task, read_pointer

TOKEN = "AAAAKgAAAAIAAAAAAAAAAb0x+token/with=base64"


def backup_task(**changes):
    task = {"role": "work", "backup_id": "prod", "worker_index": 1, "worker_count": 4, "run_id": "sched-2026-11-28",
            "source_file_system_id": "fs-12345678", "backup_file_system_id": "fs-0123456789abcdef0",
            "region": "eu-west-1", "log_group": "/efs-backup/prod/workers", "heartbeat_seconds": 60,
            "interval": "daily", "retain": 7, "streams": 4}
    task.update(changes)
    return {key: value for key, value in task.items() if value is not DROP}


def restore_task(**changes):
    task = backup_task(role="restore-work", interval=DROP, retain=DROP,
                       request=json.dumps({"snapshot": "latest", "paths": ["a"]}))
    task.update(changes)
    return {key: value for key, value in task.items() if value is not DROP}


DROP = object()


def parsed(task, token=TOKEN):
    return parse_task(json.dumps({"task_token": token, "task": task}))


def refusal(task, token=TOKEN):
    with pytest.raises(TaskRefused) as caught:
        parsed(task, token)
    return str(caught.value), caught.value.known


# ------------------------------------------------------------------------------------------------ the pointer


def test_a_pointer_gives_region_bucket_and_key():
    text = json.dumps({"region": "eu-west-1", "bucket": "prod-scripts-1a2b", "key": "tasks/backup/run-1/Worker-0.json"})
    assert read_pointer(text) == ("eu-west-1", "prod-scripts-1a2b", "tasks/backup/run-1/Worker-0.json")


@pytest.mark.parametrize("text, message", [
    ("", "the task pointer is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ("[]", "the task pointer is not a JSON object"),
    ('{"region": "eu-west-1", "bucket": "b-1"}', "the task pointer lacks key"),
    ('{"Region": "eu-west-1", "bucket": "b-1", "key": "k"}', "the task pointer lacks region"),
    ('{"region": "eu-west-1; rm -rf /", "bucket": "b-1", "key": "k"}',
     "the task pointer's region 'eu-west-1; rm -rf /' is not a region"),
    ('{"region": "eu-west-1", "bucket": "--endpoint-url=http://evil", "key": "k"}',
     "the task pointer's bucket '--endpoint-url=http://evil' is not a bucket name"),
    ('{"region": "eu-west-1", "bucket": "B_1", "key": "k"}', "the task pointer's bucket 'B_1' is not a bucket name"),
    ('{"region": "eu-west-1", "bucket": "b-1", "key": "--debug"}',
     "the task pointer's key '--debug' is not an object key"),
    ('{"region": "eu-west-1", "bucket": "b-1", "key": "a\\u0000b"}',
     "the task pointer's key 'a\\x00b' is not an object key"),
    ('{"region": "eu-west-1", "bucket": "b-1", "key": ""}', "the task pointer's key '' is not an object key"),
    ('{"region": "eu-west-1", "bucket": "b-1", "key": 7}', "the task pointer's key 7 is not an object key"),
])
def test_a_bad_pointer_is_refused_with_the_reason(text, message):
    with pytest.raises(TaskRefused) as caught:
        read_pointer(text)
    assert str(caught.value) == message


def test_an_oversized_key_is_refused_and_the_message_stays_short():
    with pytest.raises(TaskRefused) as caught:
        read_pointer(json.dumps({"region": "eu-west-1", "bucket": "b-1", "key": "k" * 1025}))
    assert str(caught.value) == "the task pointer's key '%s... is not an object key" % ("k" * 79)
    assert read_pointer(json.dumps({"region": "eu-west-1", "bucket": "b-1", "key": "k" * 1024}))[2] == "k" * 1024


@pytest.mark.parametrize("output, version", [
    ('{"VersionId": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY", "ContentLength": 10}', "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"),
    ('{"ContentLength": 10}', ""),
    ('{"VersionId": null}', ""),
    ('{"VersionId": "null"}', ""),  # what an unversioned bucket reports through some CLI versions
    ('{"VersionId": 5}', ""),
    ("not json", ""),
    ("[1]", ""),
])
def test_the_object_version_is_the_one_get_object_reported_or_none(output, version):
    assert object_version(output) == version


# ------------------------------------------------------------------------------------------------ the task


def test_a_backup_task_gives_the_token_then_its_roles_fields_in_contract_order():
    pairs, ignored = parsed(backup_task())
    assert pairs == [("task_token", TOKEN), ("role", "work"), ("backup_id", "prod"), ("worker_index", "1"),
                     ("worker_count", "4"), ("run_id", "sched-2026-11-28"), ("source_file_system_id", "fs-12345678"),
                     ("backup_file_system_id", "fs-0123456789abcdef0"), ("region", "eu-west-1"),
                     ("log_group", "/efs-backup/prod/workers"), ("heartbeat_seconds", "60"), ("interval", "daily"),
                     ("retain", "7"), ("streams", "4")]
    assert ignored == []


@pytest.mark.parametrize("role", ROLES)
def test_only_the_roles_that_work_on_parts_carry_streams(role):
    def task(**changes):
        return backup_task(role=role, **changes) if role in BACKUP_ROLES else restore_task(role=role, **changes)

    if role in WORK_ROLES:
        assert dict(parsed(task())[0])["streams"] == "4"
        assert refusal(task(streams=DROP))[0] == "the task lacks streams"
    else:
        pairs, ignored = parsed(task(streams=DROP))
        assert "streams" not in dict(pairs) and ignored == []


@pytest.mark.parametrize("role", ROLES)
def test_every_role_yields_exactly_its_contract_fields(role):
    task = backup_task(role=role) if role in BACKUP_ROLES else restore_task(role=role)
    pairs, _ = parsed(task)
    assert [name for name, _ in pairs] == ["task_token"] + list(task_fields(role))


def test_a_restore_task_passes_its_request_text_unchanged_and_ignores_backup_fields():
    request = json.dumps({"snapshot": "daily.3", "paths": ["a b", "--mirror"], "dry_run": True})
    pairs, ignored = parsed(restore_task(request=request, interval="daily"))
    assert dict(pairs)["request"] == request and "interval" not in dict(pairs)
    assert ignored == ["interval"]


def test_unknown_fields_are_ignored_and_named():
    pairs, ignored = parsed(backup_task(Role="abort", zeta=1, extra={"x": 1}))
    assert dict(pairs)["role"] == "work"
    assert ignored == ["Role", "extra", "zeta"]


@pytest.mark.parametrize("interval", INTERVALS)
def test_every_contract_interval_is_accepted(interval):
    assert dict(parsed(backup_task(interval=interval))[0])["interval"] == interval


@pytest.mark.parametrize("changes, message", [
    # misspelt or missing
    (dict(role="Work"), "role 'Work' is not one of work, finalize, abort, restore-work, restore-finalize, restore-abort"),
    (dict(role=DROP), "role None is not one of work, finalize, abort, restore-work, restore-finalize, restore-abort"),
    (dict(interval=DROP, intervall="daily"), "the task lacks interval"),
    (dict(retain=DROP), "the task lacks retain"),
    (dict(heartbeat_seconds=DROP), "the task lacks heartbeat_seconds"),
    # the interval case worker.sh checked by hand, now from the contract
    (dict(interval="yearly"), "interval 'yearly' is not one of hourly, daily, weekly, monthly"),
    (dict(interval="Daily"), "interval 'Daily' is not one of hourly, daily, weekly, monthly"),
    (dict(interval=""), "interval '' is not one of hourly, daily, weekly, monthly"),
    (dict(interval=["daily"]), "interval ['daily'] is not a string"),
    # wrong types and ranges
    (dict(worker_count="4"), "worker_count '4' is not a whole number from 1 to %d" % MAX_WORKERS),
    (dict(worker_count=2.0), "worker_count 2.0 is not a whole number from 1 to %d" % MAX_WORKERS),
    (dict(worker_count=True), "worker_count True is not a whole number from 1 to %d" % MAX_WORKERS),
    (dict(worker_count=0), "worker_count 0 is not a whole number from 1 to %d" % MAX_WORKERS),
    (dict(worker_count=MAX_WORKERS + 1), "worker_count %d is not a whole number from 1 to %d"
     % (MAX_WORKERS + 1, MAX_WORKERS)),
    (dict(worker_index=-1), "worker_index -1 is not a whole number from 0 to %d" % (MAX_WORKERS - 1)),
    (dict(worker_index=4), "worker_index 4 is not below worker_count 4"),
    (dict(retain=0), "retain 0 is not a whole number from 1 to %d" % MAX_RETAIN),
    (dict(retain=MAX_RETAIN + 1), "retain %d is not a whole number from 1 to %d" % (MAX_RETAIN + 1, MAX_RETAIN)),
    (dict(heartbeat_seconds=0), "heartbeat_seconds 0 is not a whole number from 1 to 86400"),
    (dict(heartbeat_seconds=10 ** 30), "heartbeat_seconds %d is not a whole number from 1 to 86400" % 10 ** 30),
    (dict(heartbeat_seconds=None), "heartbeat_seconds None is not a whole number from 1 to 86400"),
    (dict(streams=0), "streams 0 is not a whole number from 1 to %d" % MAX_STREAMS_PER_WORKER),
    (dict(streams=MAX_STREAMS_PER_WORKER + 1), "streams %d is not a whole number from 1 to %d"
     % (MAX_STREAMS_PER_WORKER + 1, MAX_STREAMS_PER_WORKER)),
    (dict(streams="4"), "streams '4' is not a whole number from 1 to %d" % MAX_STREAMS_PER_WORKER),
    (dict(streams=4.0), "streams 4.0 is not a whole number from 1 to %d" % MAX_STREAMS_PER_WORKER),
    (dict(streams=True), "streams True is not a whole number from 1 to %d" % MAX_STREAMS_PER_WORKER),
    (dict(streams="4; reboot"), "streams '4; reboot' is not a whole number from 1 to %d" % MAX_STREAMS_PER_WORKER),
    # injection attempts in names that become paths, mounts, arguments and log streams
    (dict(backup_id="../prod"), "backup_id '../prod' is not a backup id"),
    (dict(backup_id="prod/x"), "backup_id 'prod/x' is not a backup id"),
    (dict(backup_id="-rf"), "backup_id '-rf' is not a backup id"),
    (dict(backup_id="prod\n"), "backup_id 'prod\\n' is not a backup id"),
    (dict(run_id="../../etc"), "run_id '../../etc' is not an execution name"),
    (dict(run_id=".."), "run_id '..' is not an execution name"),
    (dict(run_id="a b"), "run_id 'a b' is not an execution name"),
    (dict(run_id="run$(reboot)"), "run_id 'run$(reboot)' is not an execution name"),
    (dict(run_id="run\x00x"), "run_id 'run\\x00x' is not an execution name"),
    (dict(run_id=""), "run_id '' is not an execution name"),
    (dict(run_id="r" * 81), "run_id '%s... is not an execution name" % ("r" * 79)),
    (dict(source_file_system_id="fs-1234567"), "source_file_system_id 'fs-1234567' is not a file system id"),
    (dict(backup_file_system_id="fs-12345678:/"), "backup_file_system_id 'fs-12345678:/' is not a file system id"),
    # a pattern's "$" would let a trailing newline through: every format is matched whole
    (dict(source_file_system_id="fs-12345678\n"), "source_file_system_id 'fs-12345678\\n' is not a file system id"),
    (dict(region="eu-west-1\n"), "region 'eu-west-1\\n' is not a region"),
    (dict(log_group="group\n"), "log_group 'group\\n' is not a log group name"),
    (dict(region="us-east-1 --endpoint-url http://x"),
     "region 'us-east-1 --endpoint-url http://x' is not a region"),
    (dict(log_group="group name"), "log_group 'group name' is not a log group name"),
    (dict(log_group="g" * 513), "log_group '%s... is not a log group name" % ("g" * 79)),
])
def test_a_backup_task_that_is_not_exactly_right_is_refused_with_the_reason(changes, message):
    reason, known = refusal(backup_task(**changes))
    assert reason == message
    assert known["task_token"] == TOKEN  # the refusal can be reported


@pytest.mark.parametrize("changes, message", [
    (dict(request=DROP), "the task lacks request"),
    (dict(request=""), "request '' is not a restore request"),
    (dict(request={"snapshot": "latest"}), "request {'snapshot': 'latest'} is not a string"),
    (dict(request="{}\x00"), "request '{}\\x00' is not a restore request"),
    (dict(request="\udc80\ud800"), "request '\\udc80\\ud800' is not a restore request"),
])
def test_a_restore_task_without_a_usable_request_is_refused(changes, message):
    assert refusal(restore_task(**changes))[0] == message


def test_a_long_task_token_is_accepted():
    assert parsed(backup_task(), token="t" * 8192)[0][0] == ("task_token", "t" * 8192)


def test_the_largest_values_in_range_are_accepted():
    pairs = dict(parsed(backup_task(worker_index=MAX_WORKERS - 1, worker_count=MAX_WORKERS, retain=MAX_RETAIN,
                                    heartbeat_seconds=86400, run_id="r" * 80, log_group="g" * 512,
                                    streams=MAX_STREAMS_PER_WORKER))[0])
    assert (pairs["worker_index"], pairs["worker_count"], pairs["retain"], pairs["streams"]) == (
        str(MAX_WORKERS - 1), str(MAX_WORKERS), str(MAX_RETAIN), str(MAX_STREAMS_PER_WORKER))


@pytest.mark.parametrize("text, message", [
    ("", "the task object is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ('{"task_token": "t"}', 'the task object is not {"task_token": ..., "task": {...}}'),
    ('{"task_token": "t", "task": "work"}', 'the task object is not {"task_token": ..., "task": {...}}'),
    ('[{"task_token": "t", "task": {}}]', 'the task object is not {"task_token": ..., "task": {...}}'),
])
def test_a_task_object_that_is_not_an_envelope_is_refused(text, message):
    with pytest.raises(TaskRefused) as caught:
        parse_task(text)
    assert str(caught.value) == message and caught.value.known == {}


@pytest.mark.parametrize("token", [None, "", 5, "t\x00x", "t" * 8193, ["t"]])
def test_a_task_without_a_usable_token_is_refused_and_nothing_can_be_reported(token):
    reason, known = refusal(backup_task(), token=token)
    assert reason == "the task object's task_token is missing or not a task token"
    assert "task_token" not in known


def test_a_refusal_keeps_the_token_and_a_valid_region_only():
    assert refusal(backup_task(interval="yearly"))[1] == {"task_token": TOKEN, "region": "eu-west-1"}
    assert refusal(backup_task(region="mars-1"))[1] == {"task_token": TOKEN}


def test_a_refusal_never_shows_the_task_token():
    for task in (backup_task(interval="yearly"), backup_task(role=DROP), restore_task(request="")):
        assert TOKEN not in refusal(task)[0]


def test_role_sets_partition_the_roles():
    assert set(BACKUP_ROLES) | set(RESTORE_ROLES) == set(ROLES) and not set(BACKUP_ROLES) & set(RESTORE_ROLES)
