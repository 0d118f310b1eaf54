"""The worker helpers run on Amazon Linux 2023's python3 (3.9) with the standard library only, next to the engine
and the contract in the scripts asset."""

import os
import subprocess

import pytest

from python39 import STDLIB, absolute_imports, python39, python_files, vermin_report

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(REPO_ROOT, "assets", "scripts")

PACKAGE = os.path.join(SCRIPTS, "efs_backup_worker")
CONTRACT = os.path.join(SCRIPTS, "efs_backup_contract")
LAUNCHER = os.path.join(SCRIPTS, "efs-backup-worker")
# What the helpers may import besides the standard library: themselves, the contract, and the engine's own rule for
# a backup id (efs_backup_engine.layout.BACKUP_ID_RE: the worker checks what the engine will accept, no copy).
ALLOWED = {"efs_backup_worker", "efs_backup_contract", "efs_backup_engine.layout"}


def test_worker_helpers_need_nothing_newer_than_python_3_9():
    code, output = vermin_report([LAUNCHER] + python_files(PACKAGE, CONTRACT))
    assert code == 0, output


def test_worker_helpers_import_only_the_standard_library_the_contract_and_the_engine_layout():
    for path in [LAUNCHER] + python_files(PACKAGE):
        for name in absolute_imports(path):
            top = name.split(".")[0]
            assert top in STDLIB or top in ALLOWED or name in ALLOWED, "%s imports %s" % (path, name)


def test_every_command_runs_on_python_3_9(tmp_path):
    interpreter = python39()
    if interpreter is None:
        pytest.skip("no python3.9 on this machine (vermin above still checks the syntax and library use)")

    def run(*args, stdin=b""):
        proc = subprocess.run([interpreter, LAUNCHER] + list(args), input=stdin, capture_output=True)
        return proc.returncode, proc.stdout, proc.stderr.decode()

    pointer = tmp_path / "pointer.json"
    pointer.write_text('{"region": "eu-west-1", "bucket": "b-1", "key": "tasks/k.json"}')
    assert run("task-pointer", str(pointer))[:2] == (0, b"eu-west-1\0b-1\0tasks/k.json\0")
    assert run("object-version", '{"VersionId": "v1"}')[:2] == (0, b"v1\0")
    task = tmp_path / "task.json"
    task.write_text('{"task_token": "t", "task": {"role": "restore-abort", "backup_id": "prod", "worker_index": 0, '
                    '"worker_count": 1, "run_id": "r", "source_file_system_id": "fs-12345678", '
                    '"backup_file_system_id": "fs-87654321", "region": "eu-west-1", "log_group": "g", '
                    '"heartbeat_seconds": 5, "request": "{}"}}')
    code, out, _ = run("task-fields", str(task))
    assert code == 0 and out.split(b"\0")[:4] == [b"task_token", b"t", b"role", b"restore-abort"]
    code, out, _ = run("restore-request", "fs-12345678", "r", stdin=b'{"snapshot": "latest", "paths": ["a"]}')
    assert (code, out) == (0, b"fs-12345678\0efs-backup-restore/r\0efs-backup-restore\0\0--snapshot=latest\0--path=a\0")
    code, out, err = run("restore-request", "fs-12345678", "r", stdin=b'{"snapshot": "latest", "dryRun": true}')
    assert (code, out, err) == (3, b"", "invalid restore request: unknown field(s) dryRun\n")
    log = tmp_path / "worker.log"
    log.write_bytes(b"a\nb\n")
    code, out, _ = run("log-batch", str(log), str(tmp_path / "offset"), str(tmp_path / "events.json"), "--final")
    assert (code, out) == (0, b"4 2\n")
    assert run("error-name", "4")[:2] == (0, b"EngineBusy\n")
    assert run("failed-parts", stdin=b'{"failed": ["w0:a"]}')[:2] == (0, b"w0:a\n")
