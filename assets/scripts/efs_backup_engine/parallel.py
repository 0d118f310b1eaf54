"""Latency-bound calls overlapped: on NFS/EFS every metadata call (open, stat, unlink, ...) is one round trip to
the server, so a process that makes them one after another waits the latency each time. Where the calls are
independent (the lstat of each entry of a directory, reading a run's bookkeeping files, counting sibling
directories, removing the files of one directory), a few threads keep several in flight at once: the NFS client
sends concurrent calls of one process in parallel, and Python releases the GIL around each system call.

Only independent calls go through here; anything whose order matters stays sequential in its caller.
"""

import os
import threading
import time

# Calls in flight at once, per process. AWS's advice for EFS is to parallelize across threads and clients because
# each operation has a per-operation latency ("Amazon EFS performance tips", "Parallelization":
# https://docs.aws.amazon.com/efs/latest/ug/performance-tips.html); 16 keeps a directory of a few hundred entries
# to a few dozen round trips, with little CPU spent on the threads.
WIDTH = 16

# A first call faster than this was served locally (a page or attribute cache, a local disk): the rest run in the
# caller's thread, where a call costs microseconds and handing it to a thread would cost more than it saves. An
# EFS round trip takes about a millisecond or more ("Amazon EFS performance specifications", latency:
# https://docs.aws.amazon.com/efs/latest/ug/performance.html).
INLINE_BELOW_SECONDS = 0.0002
# Tests set EFS_BACKUP_OVERLAP_ALWAYS=1 so that a run on a local disk takes the threaded path too (the engine's
# model-based test does, tests/engine/test_model.py): the same code as on EFS, every call through the pool.
ALWAYS = os.environ.get("EFS_BACKUP_OVERLAP_ALWAYS") == "1"

_pool = None
_pool_lock = threading.Lock()
_in_pool = threading.local()


def _shared_pool():
    """One pool per process (created on first use): a pool per call would start threads per directory."""
    global _pool
    with _pool_lock:
        if _pool is None:
            # imported here: a few milliseconds of every engine process's start-up, needed only once a call is slow
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=WIDTH, thread_name_prefix="efs-backup-io")
        return _pool


def _marked(function, *args):
    def call(item):
        _in_pool.active = True  # a call made from a pool thread runs inline: waiting on the pool could deadlock
        return function(*args, item)
    return call


def map_in_parallel(function, items):
    """[function(item) for item in items], up to WIDTH calls at once; the results in the order of items. Every
    call has ended when this returns or raises (none is left running). On an exception, the calls after it in its
    run are not made, and the first exception (in the order of the runs) is raised.

    The first call runs in the caller's thread and is timed: if it was fast (INLINE_BELOW_SECONDS), so are the
    others, and they run there too. Otherwise the rest is cut into up to WIDTH runs of consecutive items, each
    run in a pool thread. Called from a pool thread, or with fewer than two items, everything runs inline."""
    items = list(items)
    if len(items) < 2 or getattr(_in_pool, "active", False):
        return [function(item) for item in items]
    started = time.perf_counter()
    first = function(items[0])
    if not ALWAYS and time.perf_counter() - started < INLINE_BELOW_SECONDS:
        return [first] + [function(item) for item in items[1:]]
    rest = items[1:]
    size = -(-len(rest) // WIDTH)
    pool = _shared_pool()
    futures = [pool.submit(_marked(_each, function), rest[at:at + size]) for at in range(0, len(rest), size)]
    results, error = [first], None
    for future in futures:
        try:
            results.extend(future.result())
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once every call has ended
            if error is None:
                error = exc
    if error is not None:
        raise error
    return results


def _each(function, run):
    return [function(item) for item in run]
