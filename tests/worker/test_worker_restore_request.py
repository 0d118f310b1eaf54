"""efs_backup_worker.restore_request: a restore request becomes exactly the target and engine options it says, or
is refused with the reason: a misspelt "dry_run" never restores for real, and no value can turn into an option."""

import json

import pytest

from efs_backup_contract.task import RESTORE_REQUEST_FIELDS
from efs_backup_worker.restore_request import DEFAULT_PARENT, RequestRefused, RestorePlan, parse_request

PRODUCTION = "fs-12345678"
OTHER = "fs-0123456789abcdef0"
RUN = "restore-2026-11-28"


def plan(**request):
    return parse_request(json.dumps(request), PRODUCTION, RUN)


def refused(text):
    with pytest.raises(RequestRefused) as caught:
        parse_request(text, PRODUCTION, RUN)
    return str(caught.value)


def test_a_minimal_request_restores_the_whole_snapshot_into_a_new_directory_of_production():
    assert plan(snapshot="latest") == RestorePlan(
        target_file_system_id=PRODUCTION, target_dir="%s/%s" % (DEFAULT_PARENT, RUN), default_parent=DEFAULT_PARENT,
        dry_run=False, engine_args=("--snapshot=latest",))


def test_every_field_becomes_its_option_and_workers_and_streams_are_the_state_machines():
    assert plan(at="2026-11-20T00:00:00Z", paths=["projects/a", "etc/app.conf"], target_file_system_id=OTHER,
                target_path="/restored/here/", mirror=True, dry_run=True, workers=4, streams=8) == RestorePlan(
        target_file_system_id=OTHER, target_dir="restored/here", default_parent="", dry_run=True,
        engine_args=("--at=2026-11-20T00:00:00Z", "--path=projects/a", "--path=etc/app.conf", "--mirror",
                     "--dry-run"))


def test_false_flags_add_nothing_and_in_place_is_the_root():
    result = plan(snapshot="daily.3", target_path="/", mirror=False, dry_run=False)
    assert (result.target_dir, result.default_parent, result.dry_run, result.engine_args) == (
        "", "", False, ("--snapshot=daily.3",))


@pytest.mark.parametrize("target_path, target_dir", [
    ("//x", "x"), ("/a/./b//c/", "a/b/c"), ("/.", ""), ("/a/.", "a"), ("/a..b/c", "a..b/c"),
])
def test_the_target_directory_is_normalised_under_the_mount(target_path, target_dir):
    assert plan(snapshot="latest", target_path=target_path).target_dir == target_dir


def test_the_request_fields_are_the_contracts():
    request = {name: value for name, value in zip(RESTORE_REQUEST_FIELDS, (
        "latest", None, [], PRODUCTION, "/x", False, True, 2))}
    del request["at"]
    assert plan(**request).dry_run is True


# ------------------------------------------------------------------------------------------ refused requests


@pytest.mark.parametrize("request_, message", [
    # misspelt keys: refused, never ignored (the state machine lets them through)
    ({"snapshot": "latest", "dryRun": True}, "unknown field(s) dryRun"),
    ({"snapshot": "latest", "dry-run": True}, "unknown field(s) dry-run"),
    ({"snapshot": "latest", "Dry_Run": True, "dry_run ": True}, "unknown field(s) Dry_Run, 'dry_run '"),
    ({"snapshot": "latest", "path": ["a"]}, "unknown field(s) path"),
    ({"snapshot": "latest", "target": "/x"}, "unknown field(s) target"),
    ({"snapshot": "latest", "x" * 1000: 1}, "unknown field(s) '%s..." % ("x" * 79)),
    # exactly one of snapshot and at
    ({"paths": ["a"]}, "give exactly one of snapshot and at"),
    ({"snapshot": "latest", "at": "2026-11-20T00:00:00Z"}, "give exactly one of snapshot and at"),
    ({"snapshot": 3}, "snapshot 3 must be a non-empty string (no NUL, under 4096 bytes)"),
    ({"snapshot": ""}, "snapshot '' must be a non-empty string (no NUL, under 4096 bytes)"),
    ({"snapshot": ["latest"]}, "snapshot ['latest'] must be a non-empty string (no NUL, under 4096 bytes)"),
    ({"snapshot": "latest\u0000--mirror"},
     "snapshot 'latest\\x00--mirror' must be a non-empty string (no NUL, under 4096 bytes)"),
    ({"at": None}, "at None must be a non-empty string (no NUL, under 4096 bytes)"),
    # the target
    ({"snapshot": "latest", "target_file_system_id": "fs-1234"}, "target_file_system_id 'fs-1234' is not a file system id"),
    ({"snapshot": "latest", "target_file_system_id": "fs-12345678\n"},
     "target_file_system_id 'fs-12345678\\n' is not a file system id"),
    ({"snapshot": "latest", "target_file_system_id": None}, "target_file_system_id None is not a file system id"),
    ({"snapshot": "latest", "target_path": "relative"}, "target_path 'relative' must be an absolute path without '..'"),
    ({"snapshot": "latest", "target_path": "/a/../../etc"},
     "target_path '/a/../../etc' must be an absolute path without '..'"),
    ({"snapshot": "latest", "target_path": "/.."}, "target_path '/..' must be an absolute path without '..'"),
    ({"snapshot": "latest", "target_path": "/a\u0000b"}, "target_path '/a\\x00b' must be an absolute path without '..'"),
    ({"snapshot": "latest", "target_path": ""}, "target_path '' must be an absolute path without '..'"),
    ({"snapshot": "latest", "target_path": 7}, "target_path 7 must be an absolute path without '..'"),
    ({"snapshot": "latest", "target_path": "/" + "d" * 4095},
     "target_path '/%s... must be an absolute path without '..'" % ("d" * 78)),
    # paths
    ({"snapshot": "latest", "paths": "alpha"}, "paths must be a list of non-empty relative paths"),
    ({"snapshot": "latest", "paths": ["a", ""]}, "paths must be a list of non-empty relative paths"),
    ({"snapshot": "latest", "paths": ["a", 1]}, "paths must be a list of non-empty relative paths"),
    ({"snapshot": "latest", "paths": {"a": 1}}, "paths must be a list of non-empty relative paths"),
    ({"snapshot": "latest", "paths": ["ok", "x\u0000--mirror"]},
     "paths[1] 'x\\x00--mirror' must not hold a NUL character or reach 4096 bytes"),
    ({"snapshot": "latest", "paths": ["p" * 4096]},
     "paths[0] '%s... must not hold a NUL character or reach 4096 bytes" % ("p" * 79)),
    ({"snapshot": "latest", "paths": ["\ud800"]},
     "paths[0] '\\ud800' must not hold a NUL character or reach 4096 bytes"),
    # flags
    ({"snapshot": "latest", "dry_run": "true"}, "dry_run must be true or false"),
    ({"snapshot": "latest", "dry_run": 1}, "dry_run must be true or false"),
    ({"snapshot": "latest", "mirror": "yes"}, "mirror must be true or false"),
    ({"snapshot": "latest", "mirror": None}, "mirror must be true or false"),
])
def test_a_bad_request_is_refused_with_the_reason(request_, message):
    assert refused(json.dumps(request_)) == message


@pytest.mark.parametrize("text, message", [
    ("", "the request is not JSON: Expecting value: line 1 column 1 (char 0)"),
    ("{'snapshot': 'latest'}", "the request is not JSON: Expecting property name enclosed in double quotes: "
                               "line 1 column 2 (char 1)"),
    ('["snapshot", "latest"]', "the request is not a JSON object"),
    ('"latest"', "the request is not a JSON object"),
    ("null", "the request is not a JSON object"),
])
def test_a_request_that_is_not_a_json_object_is_refused(text, message):
    assert refused(text) == message


@pytest.mark.parametrize("value", ["--mirror", "-rf", "--dry-run --mirror", "$(reboot)", "`id`", "a;b", "a\nb",
                                   "--path=/etc", "*"])
def test_values_that_look_like_options_or_shell_stay_single_values(value):
    result = plan(snapshot=value, paths=[value, "ok"])
    assert result.engine_args == ("--snapshot=" + value, "--path=" + value, "--path=ok")
    assert "--mirror" not in result.engine_args and "--dry-run" not in result.engine_args


def test_undecodable_file_name_bytes_round_trip():
    """A path given as surrogate escapes (how Python's CLI and os functions carry non-UTF-8 names) is passed on."""
    result = plan(snapshot="latest", paths=["caf\udce9"])
    assert result.engine_args[1] == "--path=caf\udce9"


def test_a_large_request_is_accepted_whole():
    paths = ["dir%05d/%s" % (number, "f" * 100) for number in range(2000)]  # ~220 KB of JSON
    result = plan(snapshot="latest", paths=paths)
    assert len(result.engine_args) == 2001 and result.engine_args[-1] == "--path=" + paths[-1]


def test_the_default_target_is_checked_like_any_other():
    with pytest.raises(RequestRefused) as caught:
        parse_request('{"snapshot": "latest"}', PRODUCTION, "..")
    assert str(caught.value) == "target_path '/efs-backup-restore/..' must be an absolute path without '..'"
