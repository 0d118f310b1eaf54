"""Progress messages of the benchmarks, on stderr (stdout carries the results table)."""

import sys
import time


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)
