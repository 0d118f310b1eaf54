"""Latency-bound calls overlapped: on NFS/EFS every metadata call (open, stat, unlink, ...) is one round trip to
the server, so a process that makes them one after another waits the latency each time. Where the calls are
independent (the lstat of each entry of a directory, reading a run's bookkeeping files, counting sibling
directories, removing the files of one directory), a few threads keep several in flight at once: the NFS client
sends concurrent calls of one process in parallel, and Python releases the GIL around each system call.

Only independent calls go through here; anything whose order matters stays sequential in its caller.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

# Calls in flight at once, per process. AWS's advice for EFS is to parallelize across threads and clients because
# each operation has a per-operation latency ("Amazon EFS performance tips", "Parallelization":
# https://docs.aws.amazon.com/efs/latest/ug/performance-tips.html); 16 keeps a directory of a few hundred entries
# to a few dozen round trips, with little CPU spent on the threads.
WIDTH = 16

_pool = None
_pool_lock = threading.Lock()
_in_pool = threading.local()


def _shared_pool():
    """One pool per process (created on first use): a pool per call would start threads per directory."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WIDTH, thread_name_prefix="efs-backup-io")
        return _pool


def _marked(function):
    def call(item):
        _in_pool.active = True  # a call made from a pool thread runs inline: waiting on the pool could deadlock
        return function(item)
    return call


def map_in_parallel(function, items):
    """[function(item) for item in items], up to WIDTH calls at once; the results in the order of items. Every
    call has ended when this returns or raises (none is left running); the first exception (in the order of
    items) is raised. Called from a pool thread, or with fewer than two items, it runs the calls inline."""
    items = list(items)
    if len(items) < 2 or getattr(_in_pool, "active", False):
        return [function(item) for item in items]
    pool = _shared_pool()
    futures = [pool.submit(_marked(function), item) for item in items]
    results, error = [], None
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:  # noqa: BLE001 - re-raised below, once every call has ended
            if error is None:
                error = exc
    if error is not None:
        raise error
    return results
