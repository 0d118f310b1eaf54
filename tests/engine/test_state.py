"""The typed run record (state.py) reads and writes run.json exactly: legacy keys, optional keys, keys it does not
know, and a record it cannot read refused by name rather than half-used. ("joined" marks what prepare returns to a
worker that joined: the engine never saves a joined record.)"""

import json

import pytest

from efs_backup_engine.errors import EngineError
from efs_backup_engine.state import BackupRun, RestoreRun

# A resumed backup run's run.json as the engine before the typed state wrote it (keys and value types), plus a
# key from some other engine version.
RESUMED = {"attempt": 2, "attempt_started": 1764300000.5, "backup_id": "prod", "interval": "daily",
           "link_dests": ["/backup/prod/daily.0"], "recovered_promotion": None, "resumed_from": "run-1",
           "resumed_parts": 7, "retain": 7, "run_id": "run-2", "source": "/mnt/source", "started": 1764290000.25,
           "tree_base": "resumed", "unit_files": 200, "workers": 2, "written_by_a_newer_engine": {"x": [1]}}
RESTORE = {"attempt_started": 1764300000.5, "backup_id": "prod", "dry_run": False, "kind": "restore",
           "mode": "safe", "parents": ["a"], "paths": ["a/b"], "run_id": "exec-1", "scratch": "/s/restores/exec-1/empty",
           "selector": "daily.0", "snapshot": "daily.0", "snapshot_finished": 1764200000.0,
           "snapshot_finished_iso": "2026-11-27T00:00:00Z", "snapshot_id": None, "snapshot_path": "/backup/prod/daily.0",
           "started": 1764300000.5, "target": "/mnt/target/restore", "target_in_mount": "/restore",
           "temp": "/mnt/target/restore/.efs-backup-restore.tmp/exec-1", "unit_files": 5, "workers": 2}


def test_a_record_is_written_back_exactly_as_it_was_read(tmp_path):
    for kind, record in ((BackupRun, RESUMED), (RestoreRun, RESTORE)):
        path = str(tmp_path / "run.json")
        with open(path, "w") as handle:
            json.dump(record, handle, indent=1, sort_keys=True)
            handle.write("\n")
        before = open(path, "rb").read()
        run = kind.load(path)
        assert run.part_files == record["unit_files"] and run.run_id == record["run_id"]
        run.save(path)
        assert open(path, "rb").read() == before, kind.__name__


def test_a_fresh_run_has_no_resume_keys_and_joined_appears_only_when_set():
    fresh = {key: value for key, value in RESUMED.items()
             if key not in ("resumed_from", "resumed_parts", "written_by_a_newer_engine")}
    fresh.update(attempt=1, tree_base="new")
    run = BackupRun.from_json(fresh)
    assert run.resumed_from is None and run.to_json() == fresh
    assert BackupRun.from_json(dict(fresh, joined=True)).to_json() == dict(fresh, joined=True)


@pytest.mark.parametrize("key", ["run_id", "source", "unit_files", "link_dests"])
def test_a_record_missing_what_the_engine_needs_is_refused_by_name(key):
    broken = {name: value for name, value in RESUMED.items() if name != key}
    with pytest.raises(EngineError, match=key):
        BackupRun.from_json(broken, "runs/daily/run.json")
