"""tests/conftest.py hands the longest test files to the xdist workers first: each file it names must exist (a renamed
file would silently lose its place), and the files it names come first, in its order, each file's tests in theirs."""

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def suite_conftest():
    spec = importlib.util.spec_from_file_location("suite_conftest", REPO / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_file_started_first_exists():
    longest = suite_conftest().LONGEST_FIRST
    assert len(set(longest)) == len(longest)
    assert [path for path in longest if not (REPO / path).is_file()] == []


def test_the_listed_files_come_first_and_keep_their_tests_order():
    conftest = suite_conftest()
    first, second = conftest.LONGEST_FIRST[:2]

    class Item:
        def __init__(self, path, name):
            self.path, self.name = REPO / path, name

    class Config:
        rootpath = REPO

    items = [Item("tests/a_test.py", "a1"), Item(second, "s1"), Item("tests/b_test.py", "b1"), Item(first, "f1"),
             Item(second, "s2"), Item("tests/a_test.py", "a2"), Item(first, "f2")]
    conftest.pytest_collection_modifyitems(None, Config(), items)
    assert [item.name for item in items] == ["f1", "f2", "s1", "s2", "a1", "b1", "a2"]
