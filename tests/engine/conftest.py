import pytest

from enginekit import Engine


@pytest.fixture
def engine(tmp_path):
    return Engine(tmp_path)
