"""Names the engine accepts are matched whole: a pattern ending in `$` also matches before a trailing newline, so
`prod\\n` passed the backup-id check and a directory `daily.1\\n` beside the snapshots was taken for `daily.1`."""

import os

import pytest

from efs_backup_engine import errors, layout, preflight


@pytest.mark.parametrize("backup_id", ["prod\n", "prod\nx", "\nprod", "pr od", ".prod", "-prod", "p" * 129, ""])
def test_a_backup_id_is_refused_unless_the_whole_name_is_allowed(backup_id):
    with pytest.raises(errors.Refused):
        preflight.check_names(backup_id)


@pytest.mark.parametrize("backup_id", ["prod", "p", "a.b_c-d", "p" * 128])
def test_allowed_backup_ids_pass(backup_id):
    preflight.check_names(backup_id)


def test_only_exact_snapshot_names_are_snapshots(tmp_path):
    names = ["daily.0", "daily.1\n", "daily.2 ", "hourly.3", "weekly.x", "monthly.4\n"]
    for name in names:
        os.makedirs(tmp_path / "prod" / name)
    found = layout.Layout(str(tmp_path), "prod").snapshots()
    assert [name for _interval, _index, name in found] == ["hourly.3", "daily.0"]
