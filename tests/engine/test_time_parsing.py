"""`--at` times parse the same on the workers' Python 3.9 as here (issue 11, item 10b).

Amazon Linux 2023's python3 is 3.9, whose datetime.fromisoformat rejects "Z" and fractions of 1, 2, 4 or 5 digits
(3.11 accepts both). The engine parses these times without fromisoformat; these tests pin the expected epoch
values, check them against 3.11's fromisoformat where that is the interpreter, and run the same cases under a real
Python 3.9 when one is installed (pyenv on the development machines).
"""

import ast
import calendar
import datetime
import glob
import json
import os
import subprocess
import sys

import pytest

from enginekit import ENGINE
from python39 import python39

PACKAGE = os.path.join(os.path.dirname(ENGINE), "efs_backup_engine")
from efs_backup_engine.restore import parse_time

BASE = calendar.timegm((2026, 11, 20, 13, 45, 7, 0, 0, 0))  # 2026-11-20T13:45:07Z

ACCEPTED = [
    ("2026-11-20T13:45:07Z", BASE),
    ("2026-11-20T13:45:07z", BASE),
    ("2026-11-20 13:45:07Z", BASE),
    ("2026-11-20T13:45Z", BASE - 7),
    ("2026-11-20T13:45:07.5Z", BASE + 0.5),
    ("2026-11-20T13:45:07.25Z", BASE + 0.25),
    ("2026-11-20T13:45:07.125Z", BASE + 0.125),
    ("2026-11-20T13:45:07.0625Z", BASE + 0.0625),
    ("2026-11-20T13:45:07.03125Z", BASE + 0.03125),
    ("2026-11-20T13:45:07.015625Z", BASE + 0.015625),
    ("2026-11-20T13:45:07,5Z", BASE + 0.5),
    ("2026-11-20T14:45:07+01:00", BASE),
    ("2026-11-20T14:45:07.5+01:00", BASE + 0.5),
    ("2026-11-20T08:15:07-05:30", BASE),
    ("2026-11-20T14:45:07+0100", BASE),
    ("2026-11-20T14:45:07+01", BASE),
    ("2026-11-20T13:45:07+00:00", BASE),
    ("  2026-11-20T13:45:07Z\n", BASE),
    ("2024-02-29T00:00:00Z", calendar.timegm((2024, 2, 29, 0, 0, 0, 0, 0, 0))),
]

REJECTED = [
    "2026-11-20T13:45:07",  # naive: ambiguous
    "2026-11-20",  # a date alone has no zone either
    "2026-11-20T13:45:07.1234567Z",  # 7 digits: not microseconds
    "2026-11-20T13:45:07.Z",
    "2026-13-20T13:45:07Z",
    "2025-02-29T00:00:00Z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T13:60:00Z",
    "2026-11-20T13:45:07+24:00",
    "2026-11-20T13:45:07+01:60",
    "20261120T134507Z",
    "yesterday",
    "",
]


@pytest.mark.parametrize("text,expected", ACCEPTED)
def test_accepted_times_give_the_exact_epoch(text, expected):
    assert parse_time(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", REJECTED)
def test_rejected_times_raise_value_error(text):
    with pytest.raises(ValueError):
        parse_time(text)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.11's fromisoformat is the oracle")
@pytest.mark.parametrize("text,expected", [case for case in ACCEPTED if "," not in case[0]])
def test_agrees_with_python_3_11_fromisoformat(text, expected):
    oracle = datetime.datetime.fromisoformat(text.strip().replace("z", "Z"))
    assert parse_time(text) == pytest.approx(oracle.timestamp(), abs=1e-6)


def test_the_engine_never_relies_on_fromisoformat():
    """fromisoformat's accepted forms differ between 3.9 and 3.11: the engine must not use it at all."""
    for path in sorted(glob.glob(os.path.join(PACKAGE, "*.py"))):
        tree = ast.parse(open(path).read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                assert node.attr != "fromisoformat", "%s:%d uses fromisoformat" % (path, node.lineno)


@pytest.mark.skipif(python39() is None, reason="no Python 3.9 interpreter on this machine")
def test_same_results_under_a_real_python_3_9():
    script = """
import json, sys
# another interpreter (3.9), outside pytest and its pythonpath: it is handed the folder of the engine package
sys.path.insert(0, sys.argv[1])
from datetime import datetime
from efs_backup_engine.restore import parse_time
cases = json.loads(sys.argv[2])
out = {"version": list(sys.version_info[:2]), "accepted": {}, "rejected": {}, "fromisoformat_rejects": []}
for text, _ in cases["accepted"]:
    out["accepted"][text] = parse_time(text)
for text in cases["rejected"]:
    try:
        parse_time(text)
        out["rejected"][text] = "accepted"
    except ValueError:
        out["rejected"][text] = "ValueError"
for text in ("2026-11-20T13:45:07Z", "2026-11-20T13:45:07.5+00:00", "2026-11-20T13:45:07.0625+00:00"):
    try:
        datetime.fromisoformat(text)
    except ValueError:
        out["fromisoformat_rejects"].append(text)
print(json.dumps(out))
"""
    proc = subprocess.run([python39(), "-c", script, os.path.dirname(ENGINE),
                           json.dumps({"accepted": ACCEPTED, "rejected": REJECTED})],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["version"] == [3, 9]
    # The interpreter really has 3.9's narrow fromisoformat (else this test would prove nothing).
    assert len(result["fromisoformat_rejects"]) == 3
    for text, expected in ACCEPTED:
        assert result["accepted"][text] == pytest.approx(expected, abs=1e-6), text
    assert set(result["rejected"].values()) == {"ValueError"}
