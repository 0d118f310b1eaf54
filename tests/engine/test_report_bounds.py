"""A run summary too big for a message: the worker hands Step Functions a bounded copy (`bound-report`), the run's
outcome is untouched and the full summary stays on the backup file system.

The big summary is a real one: an engine run (as an unprivileged user, so unreadable files are warnings, as on a
root-squashed NFS) over many parts whose long-named files cannot be read. Step Functions takes at most 256 KiB of
task output (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html); worker.sh bounds to 32 KiB.
"""

import json
import os
import subprocess
import sys

from enginekit import ENGINE
from test_outcomes import summary_of, unprivileged  # noqa: F401  (the fixture)

REPORT_MAX_BYTES = 32 * 1024


def bound_report(report, max_bytes=REPORT_MAX_BYTES, note="full summary: fs-1:/prod/.efs-backup/history/r.json"):
    proc = subprocess.run([sys.executable, ENGINE, "bound-report", "--max-bytes", str(max_bytes), "--note", note],
                          input=json.dumps(report).encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_promoted_run_with_a_huge_summary_is_reported_bounded_and_still_promoted(unprivileged):  # noqa: F811
    deep = "/".join(["d" * 200] * 4)  # rsync names every unreadable file with its whole path
    for part in range(60):
        for index in range(6):
            secret = unprivileged.write("part-%02d/%s/unreadable-%d-%s" % (part, deep, index, "x" * 200), "data")
            os.chmod(secret, 0)
        unprivileged.write("part-%02d/readable" % part, "ok")
    proc = unprivileged(*unprivileged.backup)
    assert proc.returncode == 2, proc.stderr
    summary = summary_of(proc)
    assert summary["status"] == "warning" and summary["snapshot"] == "daily.0"
    size = len(json.dumps(summary, sort_keys=True).encode())
    assert size > 256 * 1024, "more than a task may hand back: SendTaskSuccess would refuse it"

    bounded = bound_report(summary)
    assert len(json.dumps(bounded, sort_keys=True).encode()) <= REPORT_MAX_BYTES
    for key in ("status", "snapshot", "snapshot_id", "run_id", "warnings", "failed_count", "totals"):
        assert bounded[key] == summary[key], key
    truncated = bounded["truncated"]
    assert truncated["original_bytes"] == size and "history/r.json" in truncated["note"]
    assert truncated["lists"]["warning_parts"] == len(summary["warning_parts"]) == 50
    assert 0 < len(bounded["warning_parts"]) < 50
    assert bounded["warning_parts"][0] == summary["warning_parts"][0], "what is kept is kept as it was"
    # the full summary is where the engine keeps it, unchanged
    history = os.path.join(unprivileged.base, "backup", "prod", ".efs-backup", "history", summary["run_id"] + ".json")
    with open(history) as handle:
        assert json.load(handle) == summary
    assert os.path.isdir(os.path.join(unprivileged.base, "backup", "prod", "daily.0"))


def test_a_report_that_fits_is_unchanged_and_the_last_resort_keeps_the_outcome():
    small = {"status": "success", "snapshot": "daily.0", "warning_parts": [{"path": "a", "messages": ["m"]}]}
    assert bound_report(small) == small
    huge = {"status": "success", "snapshot": "daily.0", "snapshot_id": "abc", "totals": {"files_scanned": 3},
            "source": "/s" * 5000, "plan": {"create": [{"path": "p" * 300} for _ in range(500)]}}
    tiny = bound_report(huge, max_bytes=600)
    assert len(json.dumps(tiny, sort_keys=True).encode()) <= 600
    assert (tiny["status"], tiny["snapshot"], tiny["snapshot_id"], tiny["totals"]) == (
        "success", "daily.0", "abc", {"files_scanned": 3})


def test_a_report_that_is_not_json_is_refused():
    proc = subprocess.run([sys.executable, ENGINE, "bound-report", "--max-bytes", "100"], input=b"not json",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.returncode == 3 and b"not JSON" in proc.stderr
