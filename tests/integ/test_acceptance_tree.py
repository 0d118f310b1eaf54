"""The acceptance test's tree function (tests/integ/acceptance_functions/tree.py) against the real engine, locally.

The same seed / change / compare code the acceptance test runs in Lambda on the production stand-in runs here on a
local directory, with the engine's own backup and restore in between (the path the EC2 workers take, minus EFS):
the awkward tree survives two backups and a restore of one path exactly, and the comparison does catch a broken
hard link, a changed mode and a missing file (so its "equal" in the account means something).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
import tree  # tests/integ/acceptance_functions (pytest.ini pythonpath): the Lambda function's module
from enginekit import Engine

RESTORE_PATH = "data/restore-me"
TARGET = "acceptance-restore"


@pytest.fixture
def restored(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("the sample tree has files owned by another user (chown needs root)")
    engine = Engine(tmp_path)
    monkeypatch.setattr(tree, "ROOT", engine.source)
    assert tree.handler({"action": "seed"}, None)["status"] == "seeded"
    engine.backup(workers=2)
    assert tree.handler({"action": "change"}, None) == {"status": "changed"}
    engine.backup(workers=2)
    dry = engine.restore(os.path.join(engine.source, TARGET), "--snapshot", "latest", "--path", RESTORE_PATH,
                         "--dry-run")
    assert dry["status"] == "success"
    assert tree.handler({"action": "absent", "path": TARGET}, None) == {"absent": True}
    engine.restore(os.path.join(engine.source, TARGET), "--snapshot", "latest", "--path", RESTORE_PATH)
    return engine


def compare():
    return tree.handler({"action": "compare", "left": RESTORE_PATH, "right": f"{TARGET}/{RESTORE_PATH}"}, None)


def test_the_restored_path_equals_the_source(restored):
    result = compare()
    assert result["equal"] is True, result["differences"]
    assert result["entries"] >= 12
    assert os.path.exists(os.path.join(restored.source, TARGET, RESTORE_PATH, "added later.txt"))  # the 2nd backup


def test_the_comparison_catches_a_broken_hard_link_a_mode_and_a_missing_file(restored):
    copy = Path(restored.source, TARGET, RESTORE_PATH)
    linked = copy / "hardlink.bin"
    data, times = linked.read_bytes(), os.stat(linked)
    linked.unlink()
    linked.write_bytes(data)
    os.utime(linked, ns=(times.st_atime_ns, times.st_mtime_ns))
    os.utime(copy, ns=(times.st_atime_ns, times.st_mtime_ns))
    result = compare()
    assert not result["equal"] and any(d.startswith("hardlink.bin:") for d in result["differences"])
    shutil.rmtree(copy / "private")
    os.chmod(copy / "sub dir", 0o700)
    differences = compare()["differences"]
    assert "private" in differences and any(d.startswith("sub dir:") for d in differences)


def test_paths_outside_the_file_system_are_refused():
    with pytest.raises(ValueError):
        tree.handler({"action": "absent", "path": "../etc"}, None)


def test_seed_and_change_can_be_repeated(tmp_path, monkeypatch):
    """The assertion waiter invokes again after an error: a repeated seed starts over, a repeated change is a no-op."""
    if os.geteuid() != 0:
        pytest.skip("the sample tree has files owned by another user (chown needs root)")
    monkeypatch.setattr(tree, "ROOT", str(tmp_path))
    first = tree.handler({"action": "seed"}, None)
    (tmp_path / "data" / "stray").write_text("left by a failed attempt")
    assert tree.handler({"action": "seed"}, None) == first
    assert not (tmp_path / "data" / "stray").exists()
    tree.handler({"action": "change"}, None)
    before = tree.describe(str(tmp_path / "data"))
    assert tree.handler({"action": "change"}, None) == {"status": "changed"}
    assert tree.describe(str(tmp_path / "data")) == before
