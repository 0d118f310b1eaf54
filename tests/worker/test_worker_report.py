"""efs_backup_worker.report: error names come from the contract; failed parts are read from the engine's result."""

import pytest

from efs_backup_contract.exits import ERROR_NAMES, EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_WARNINGS
from efs_backup_worker.report import error_name, failed_parts


def test_error_names_are_the_contracts():
    assert {code: error_name(code) for code in ERROR_NAMES} == ERROR_NAMES
    assert (error_name(EXIT_FAILED), error_name(EXIT_REFUSED), error_name(EXIT_BUSY)) == (
        "EngineFailed", "EngineRefused", "EngineBusy")
    assert (error_name(EXIT_OK), error_name(EXIT_WARNINGS), error_name(137)) == (
        "EngineExit0", "EngineExit2", "EngineExit137")


@pytest.mark.parametrize("output, parts", [
    ('{"failed": ["w0:alpha", "w1:with space"], "done": 3}', "w0:alpha, w1:with space"),
    ('{"failed": []}', "(none listed)"),
    ('{"done": 3}', "(none listed)"),
    ('{"failed": "alpha"}', "(unreadable engine output)"),
    ('{"failed": null}', "(unreadable engine output)"),
    ('["w0:alpha"]', "(unreadable engine output)"),
    ("Traceback (most recent call last):", "(unreadable engine output)"),
    ("", "(unreadable engine output)"),
    ('{"failed": [1, "b"]}', "1, b"),
])
def test_failed_parts_of_an_engine_result(output, parts):
    assert failed_parts(output) == parts
