"""`efs-backup restore --at TIME`: every documented ISO 8601 form gives the same second on Python 3.9 (the oldest the
CLI supports, and Amazon Linux 2023's) as here. Python 3.9's datetime.fromisoformat rejects "Z" and fractions of 1,
2, 4 or 5 digits, so the CLI parses with efs_backup_contract.times, never fromisoformat; these cases pin the
result, are checked against 3.11's fromisoformat where that is the interpreter, and run under a real Python 3.9
when one is installed (pyenv on the development machines).
"""

from __future__ import annotations

import ast
import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from efs_backup_cli import restore
from efs_backup_cli.errors import EXIT_REFUSED, CliError
from python39 import python39

ROOT = Path(__file__).resolve().parents[2]
CLI_PACKAGES = (ROOT / "efs_backup_cli", ROOT / "assets" / "scripts" / "efs_backup_contract")

ACCEPTED = [
    ("2026-11-20T13:45:07Z", "2026-11-20T13:45:07Z"),
    ("2026-11-20T13:45:07z", "2026-11-20T13:45:07Z"),
    ("2026-11-20 13:45:07Z", "2026-11-20T13:45:07Z"),
    ("2026-11-20t13:45:07Z", "2026-11-20T13:45:07Z"),
    ("2026-11-20T13:45Z", "2026-11-20T13:45:00Z"),
    ("2026-11-20T13:45:07.5Z", "2026-11-20T13:45:07Z"),  # the second it falls in
    ("2026-11-20T13:45:07.25Z", "2026-11-20T13:45:07Z"),
    ("2026-11-20T13:45:07.999Z", "2026-11-20T13:45:07Z"),
    ("2026-11-20T13:45:07.0625Z", "2026-11-20T13:45:07Z"),
    ("2026-11-20T13:45:07.03125Z", "2026-11-20T13:45:07Z"),
    ("2026-11-20T13:45:07.999999Z", "2026-11-20T13:45:07Z"),
    ("2026-11-20T13:45:07,5Z", "2026-11-20T13:45:07Z"),
    ("2026-11-20T14:45:07+01:00", "2026-11-20T13:45:07Z"),
    ("2026-11-20T14:45:07.5+01:00", "2026-11-20T13:45:07Z"),
    ("2026-11-20T08:15:07-05:30", "2026-11-20T13:45:07Z"),
    ("2026-11-20T14:45:07+0100", "2026-11-20T13:45:07Z"),
    ("2026-11-20T14:45:07+01", "2026-11-20T13:45:07Z"),
    ("2026-11-21T00:30:00+01:00", "2026-11-20T23:30:00Z"),  # the offset moves the date
    ("2026-11-20T13:45:07+00:00", "2026-11-20T13:45:07Z"),
    ("  2026-11-20T13:45:07Z\n", "2026-11-20T13:45:07Z"),
    ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"),
    # No zone means UTC (the CLI documents it: naive = UTC), a date alone its midnight.
    ("2026-11-20T13:45:07", "2026-11-20T13:45:07Z"),
    ("2026-11-20 13:45", "2026-11-20T13:45:00Z"),
    ("2026-11-20T13:45:07.5", "2026-11-20T13:45:07Z"),
    ("2026-11-20", "2026-11-20T00:00:00Z"),
]

REJECTED = [
    "2026-11-20T13:45:07.1234567Z",  # 7 digits: not microseconds (and the engine refuses it too)
    "2026-11-20T13:45:07.Z",
    "2026-13-20T13:45:07Z",
    "2025-02-29T00:00:00Z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T13:60:00Z",
    "2026-11-20T13:45:07+24:00",
    "2026-11-20T13:45:07+01:60",
    "2026-11-20T13",
    "20261120T134507Z",
    "2026-W47-5",
    "yesterday",
    "",
]


@pytest.mark.parametrize("text, expected", ACCEPTED)
def test_accepted_times(text, expected):
    assert restore.parse_time(text) == expected
    assert restore.build_request(at=text)["at"] == expected, "the request carries the parsed time"


@pytest.mark.parametrize("text", REJECTED)
def test_rejected_times_are_refused_with_the_reason(text):
    with pytest.raises(CliError, match=r"--at .*: expected an ISO time such as 2026-11-20T00:00:00Z") as raised:
        restore.parse_time(text)
    assert raised.value.code == EXIT_REFUSED


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.11's fromisoformat is the oracle")
@pytest.mark.parametrize("text, expected", [case for case in ACCEPTED if "," not in case[0]])
def test_agrees_with_python_3_11_fromisoformat(text, expected):
    oracle = datetime.datetime.fromisoformat(text.strip().replace("z", "Z").replace("t", "T"))
    if oracle.tzinfo is None:
        oracle = oracle.replace(tzinfo=datetime.timezone.utc)
    assert oracle.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") == expected


def test_the_cli_never_relies_on_fromisoformat():
    """fromisoformat's accepted forms differ between 3.9 and 3.11: the CLI and the contract must not use it."""
    for package in CLI_PACKAGES:
        for path in sorted(package.glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Attribute):
                    assert node.attr != "fromisoformat", f"{path}:{node.lineno} uses fromisoformat"


@pytest.mark.skipif(python39() is None, reason="no Python 3.9 interpreter on this machine")
def test_same_results_under_a_real_python_3_9():
    script = """
import json, sys
sys.path[:0] = sys.argv[1:3]
from datetime import datetime
from efs_backup_cli.errors import CliError
from efs_backup_cli.restore import parse_time
cases = json.loads(sys.argv[3])
out = {"version": list(sys.version_info[:2]), "accepted": {}, "rejected": {}, "fromisoformat_rejects": []}
for text, _ in cases["accepted"]:
    out["accepted"][text] = parse_time(text)
for text in cases["rejected"]:
    try:
        out["rejected"][text] = parse_time(text)
    except CliError as error:
        out["rejected"][text] = error.code
for text in ("2026-11-20T13:45:07Z", "2026-11-20T13:45:07.5+00:00", "2026-11-20T13:45:07.0625+00:00"):
    try:
        datetime.fromisoformat(text)
    except ValueError:
        out["fromisoformat_rejects"].append(text)
print(json.dumps(out))
"""
    proc = subprocess.run([python39(), "-I", "-c", script, str(ROOT), str(ROOT / "assets" / "scripts"),
                           json.dumps({"accepted": ACCEPTED, "rejected": REJECTED})],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["version"] == [3, 9]
    # The interpreter really has 3.9's narrow fromisoformat (else this test would prove nothing).
    assert len(result["fromisoformat_rejects"]) == 3
    assert result["accepted"] == {text: expected for text, expected in ACCEPTED}
    assert result["rejected"] == {text: EXIT_REFUSED for text in REJECTED}
