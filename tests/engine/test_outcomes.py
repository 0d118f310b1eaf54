"""Honest results: source-side read errors are warnings (exit 2, snapshot promoted, recorded per part);
destination-side errors fail the part (exit 1, nothing promoted); the next run redoes only the failed parts.

rsync running as root reads everything, so these tests run the engine as an unprivileged user (nobody), with
the system python3 and a copy of the engine scripts, exactly as a worker without root would."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from enginekit import ENGINE

NOBODY = 65534
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")


@pytest.fixture
def unprivileged(tmp_path):
    base = tempfile.mkdtemp(prefix="efs-backup-nobody-")
    os.chmod(base, 0o755)
    scripts = os.path.join(base, "scripts")
    shutil.copytree(os.path.dirname(ENGINE), scripts, ignore=shutil.ignore_patterns("__pycache__"))
    for sub in ("source", "backup"):
        os.makedirs(os.path.join(base, sub))
    for dirpath, dirnames, filenames in os.walk(base):
        os.chown(dirpath, NOBODY, NOBODY)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), NOBODY, NOBODY)

    def run(*args):
        command = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                   "/usr/bin/python3", os.path.join(scripts, "efs-backup-engine")] + [str(a) for a in args]
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=base,
                              env={"PATH": os.environ["PATH"], "HOME": base})

    def write(rel, data):
        path = os.path.join(base, "source", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as handle:
            handle.write(data)
        os.chown(path, NOBODY, NOBODY)
        os.chown(os.path.dirname(path), NOBODY, NOBODY)
        return path

    run.base, run.write = base, write
    run.backup = ["backup", "--source", os.path.join(base, "source"), "--backup-root", os.path.join(base, "backup"),
                  "--id", "prod", "--interval", "daily", "--retain", "2", "--json", "--quiet", "--unit-files", "3"]
    assert run("init", "--backup-root", os.path.join(base, "backup")).returncode == 0
    yield run
    shutil.rmtree(base)


def summary_of(proc):
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def test_unreadable_source_file_is_a_warning_and_the_snapshot_is_promoted(unprivileged):
    for part in ("a", "b", "c"):
        for index in range(4):
            unprivileged.write("%s/f%d" % (part, index), "data")
    secret = unprivileged.write("b/secret", "no read access")
    os.chmod(secret, 0)
    proc = unprivileged(*unprivileged.backup)
    assert proc.returncode == 2, proc.stderr
    summary = summary_of(proc)
    assert summary["status"] == "warning" and summary["snapshot"] == "daily.0"
    [part] = summary["warning_parts"]
    assert part["path"] == "b" and any("secret" in message and "[sender]" in message for message in part["messages"])
    snapshot = os.path.join(unprivileged.base, "backup", "prod", "daily.0")
    assert os.path.exists(os.path.join(snapshot, "a", "f0")) and not os.path.exists(os.path.join(snapshot, "b", "secret"))


def test_destination_error_fails_the_part_promotes_nothing_and_the_next_run_redoes_only_it(unprivileged):
    for part in ("a", "b", "c"):
        for index in range(4):
            unprivileged.write("%s/f%d" % (part, index), "v1")
    assert unprivileged(*unprivileged.backup).returncode == 0
    backup = os.path.join(unprivileged.base, "backup")
    before = sorted(os.listdir(os.path.join(backup, "prod")))
    for part in ("a", "b", "c"):
        unprivileged.write("%s/f0" % part, "v2")
    prepare = ["prepare"] + [a for a in unprivileged.backup[1:] if a not in ("--json", "--quiet")]
    assert unprivileged(*prepare).returncode == 0, "prepare"
    blocked = os.path.join(backup, "prod", ".efs-backup", "runs", "daily", "tree", "b")
    os.makedirs(blocked, exist_ok=True)
    os.chown(blocked, 0, 0)  # the backup side of part b cannot be written by the worker
    work = unprivileged("work", "--backup-root", backup, "--id", "prod", "--interval", "daily", "--worker-id", "w0")
    assert work.returncode == 1, work.stderr
    final = unprivileged("finalize", "--backup-root", backup, "--id", "prod", "--interval", "daily", "--json")
    assert final.returncode == 1
    summary = summary_of(final)
    assert summary["status"] == "failed" and "snapshot" not in summary
    # part b cannot write its files; part "." (the top level's own entries) cannot set b's attributes
    failed = {part["path"]: part["reason"] for part in summary["failed_parts"]}
    assert sorted(failed) == [".", "b"], failed
    assert "[receiver]" in failed["b"] and "Permission denied" in failed["b"]
    assert sorted(os.listdir(os.path.join(backup, "prod"))) == before, "nothing promoted"
    with open(os.path.join(backup, "prod", "daily.0", "a", "f0")) as handle:
        assert handle.read() == "v1"
    os.chown(blocked, NOBODY, NOBODY)
    proc = unprivileged(*unprivileged.backup)
    assert proc.returncode == 0, proc.stderr
    summary = summary_of(proc)
    assert summary["attempt"] == 2
    manifest = json.load(open(os.path.join(backup, "prod", ".efs-backup", "manifests", "daily.0.json")))
    redone = sorted(part["path"] for part in manifest["parts_detail"] if part["attempt"] == 2)
    assert redone == [".", "b"], "a resumed run redoes only the failed parts"
    for part in ("a", "b", "c"):
        with open(os.path.join(backup, "prod", "daily.0", part, "f0")) as handle:
            assert handle.read() == "v2"
