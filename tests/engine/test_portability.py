"""The engine runs on Amazon Linux 2023's python3 (3.9) with the standard library and the contract package only
(efs_backup_contract: shipped beside it in the scripts asset)."""

import os

from enginekit import ENGINE
from python39 import STDLIB, absolute_imports, python_files, vermin_report

SCRIPTS = os.path.dirname(ENGINE)
PACKAGE = os.path.join(SCRIPTS, "efs_backup_engine")
CONTRACT = os.path.join(SCRIPTS, "efs_backup_contract")


def engine_files():
    return [ENGINE] + python_files(PACKAGE, CONTRACT)


def test_engine_needs_nothing_newer_than_python_3_9():
    code, output = vermin_report(engine_files())
    assert code == 0, output


def test_engine_imports_only_the_standard_library_itself_and_the_contract():
    for path in engine_files():
        for name in absolute_imports(path):
            top = name.split(".")[0]
            assert top in STDLIB or top in ("efs_backup_engine", "efs_backup_contract"), "%s imports %s" % (path, name)
