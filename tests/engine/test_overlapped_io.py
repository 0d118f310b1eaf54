"""Overlapped latency-bound calls (parallel.py) and what uses them: the calls really overlap, the order and the
errors are kept, nothing is left running; an overlapped removal never follows a symlink; and the claim loop's
coordination reads no file twice and no result or claim content at all (issue 12: a claim or a wait costs O(1)
metadata operations, whatever the number of parts and workers)."""

import os
import threading
import time

import pytest

from efs_backup_engine import parallel, parts
from efs_backup_engine.fsutil import create_exclusive, remove_tree, write_json_atomic
from efs_backup_engine.parts import PartStore, remaining_work


def test_slow_calls_overlap_and_results_keep_the_order_of_the_items():
    barrier = threading.Barrier(4, timeout=10)  # broken unless the four calls after the first are in flight at once

    def call(item):
        if item == 7:
            time.sleep(0.01)  # the first call, made inline and timed: slow, as an NFS round trip is
        else:
            barrier.wait()
        return item * item

    assert parallel.map_in_parallel(call, [7, 3, 1, 2, 5]) == [49, 9, 1, 4, 25]


def test_fast_calls_stay_in_the_callers_thread():
    """A local disk or a cache answers in microseconds: handing each call to a thread would cost more."""
    caller = threading.get_ident()
    threads = parallel.map_in_parallel(lambda item: threading.get_ident(), range(200))
    assert set(threads) == {caller}


def test_the_first_error_is_raised_once_every_call_has_ended():
    ended = []

    def call(item):
        if item in (1, 3):
            raise ValueError("item %d" % item)
        time.sleep(0.05)  # slow: the calls after the first go to the pool, one per run (fewer than WIDTH)
        ended.append(item)
        return item

    with pytest.raises(ValueError, match="item 1"):
        parallel.map_in_parallel(call, range(8))
    assert sorted(ended) == [0, 2, 4, 5, 6, 7]  # none still running when the error surfaced


def test_a_call_from_a_pool_thread_runs_inline_instead_of_waiting_on_the_pool():
    """Every pool thread waiting on calls queued behind it would deadlock: nested calls run inline."""
    def slow(x, item):
        time.sleep(0.001)
        return x + item

    def outer(item):
        time.sleep(0.001)
        return sum(parallel.map_in_parallel(lambda x: slow(x, item), range(10)))

    result = []
    worker = threading.Thread(target=lambda: result.append(parallel.map_in_parallel(outer, range(parallel.WIDTH * 2))))
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "nested map_in_parallel deadlocked"
    assert result == [[45 + 10 * item for item in range(parallel.WIDTH * 2)]]


def test_an_overlapped_removal_never_follows_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    for index in range(20):
        (outside / ("keep-%d" % index)).write_text("mine")
    (outside / "sub" / "deep").write_text("mine too")
    doomed = tmp_path / "trash" / "expired"
    for directory in ("a", "a/b", "c"):
        (doomed / directory).mkdir(parents=True)
    for index in range(40):
        (doomed / "a" / ("f%d" % index)).write_text("x")
        (doomed / "a" / "b" / ("g%d" % index)).write_text("y")
    (doomed / "c" / "to-dir").symlink_to(outside)
    (doomed / "c" / "to-sub").symlink_to(outside / "sub")
    (doomed / "c" / "to-file").symlink_to(outside / "keep-0")
    (doomed / "to-dir").symlink_to(outside)
    os.chmod(doomed / "a" / "b", 0o500)  # read-only: opened up for the owner, as the sequential removal does

    remove_tree(str(doomed), overlapped=True)

    assert not doomed.exists()
    assert sorted(os.listdir(outside)) == sorted(["sub"] + ["keep-%d" % index for index in range(20)])
    assert (outside / "sub" / "deep").read_text() == "mine too"


class _Lock:
    """What remaining_work needs of the run lock: heartbeat ages, counted."""
    every = 3600

    def __init__(self, alive):
        self.alive, self.checks = alive, 0

    def heartbeats(self):
        self.checks += 1
        return {name: 0.0 for name in self.alive}

    def beating(self, name, ages):
        return name in ages


def _store_with_parts(tmp_path, count, claimed, finished):
    store = PartStore(str(tmp_path / "run"))
    store.create()
    ids = [store.add({"path": "d%03d" % index, "depth": 1, "estimate": index}) for index in range(count)]
    for part_id in ids[:claimed]:
        assert create_exclusive(os.path.join(store.claims_dir, part_id), {"worker": "w", "heartbeat": "hb.w"})
    for part_id in ids[:finished]:
        write_json_atomic(os.path.join(store.results_dir, part_id + ".json"), {"status": "ok"}, durable=False)
    return ids


def test_waiting_reads_each_part_once_and_no_result_or_claim_until_the_heartbeats_are_due(tmp_path, monkeypatch):
    _store_with_parts(tmp_path, count=60, claimed=60, finished=40)
    reads = []
    real = parts.read_json
    monkeypatch.setattr(parts, "read_json", lambda path, *a, **k: reads.append(path) or real(path, *a, **k))
    store, lock = PartStore(str(tmp_path / "run")), _Lock(alive={"hb.w"})
    waiting = parts.Waiting(lock)

    assert remaining_work(store, lock, waiting) == "wait"  # first look: the heartbeats are checked at once
    first = list(reads)
    assert len([path for path in first if "/units/" in path]) == 60
    assert not [path for path in first if "/results/" in path]
    # unfinished parts' claims only, until one with a live heartbeat is found
    assert 1 <= len([path for path in first if "/claims/" in path]) <= 20
    assert lock.checks == 1
    for _ in range(50):
        assert remaining_work(store, lock, waiting) == "wait"
    assert reads == first, "a look after the first read a file again"
    assert lock.checks == 1, "the heartbeats were checked before they were due"


def test_a_dead_claimers_parts_are_orphaned_once_the_heartbeats_are_checked(tmp_path):
    _store_with_parts(tmp_path, count=10, claimed=10, finished=5)
    lock = _Lock(alive=set())
    assert remaining_work(PartStore(str(tmp_path / "run")), lock, parts.Waiting(lock)) == "orphaned"


def test_finished_and_free_are_told_from_names_alone(tmp_path):
    ids = _store_with_parts(tmp_path, count=10, claimed=8, finished=8)
    store, lock = PartStore(str(tmp_path / "run")), _Lock(alive={"hb.w"})
    assert remaining_work(store, lock) == "free"
    for part_id in ids[8:]:
        create_exclusive(os.path.join(store.claims_dir, part_id), {"worker": "w", "heartbeat": "hb.w"})
        write_json_atomic(os.path.join(store.results_dir, part_id + ".json"), {"status": "ok"}, durable=False)
    assert remaining_work(store, lock) == "done"


def test_reset_removes_a_result_a_crash_left_unreadable(tmp_path):
    ids = _store_with_parts(tmp_path, count=4, claimed=4, finished=4)
    store = PartStore(str(tmp_path / "run"))
    open(os.path.join(store.results_dir, ids[2] + ".json"), "w").close()  # emptied by a power loss
    assert store.reset(keep_finished=True) == 3
    assert store.finished() == {ids[0], ids[1], ids[3]}
    assert store.claim_next({"worker": "w2", "heartbeat": "hb.w2"})[0] == ids[2]
