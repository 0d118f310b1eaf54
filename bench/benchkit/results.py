"""The one writer of benchmark results, and the number formats of their tables.

A run writes ``<name>.md`` (the markdown table, also printed on stdout) and ``<name>.json`` (every raw number) into
the results directory (bench/results by default, git-ignored)."""

import json
import os
import shlex
import sys


def command_line(script, argv):
    """How the run was started, for the table: ``python3 bench/<script> ARGS``."""
    return "python3 bench/%s" % script + ("" if not argv else " " + " ".join(map(shlex.quote, argv)))


def write_results(results_dir, name, res, md):
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, name + ".md"), "w") as f:
        f.write(md)
    with open(os.path.join(results_dir, name + ".json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True, default=str)
    sys.stdout.write(md)


def fmt_int(x):
    return "-" if x is None else "{:,}".format(int(round(x)))


def fmt_f(x, nd=2):
    return "-" if x is None else ("%." + str(nd) + "f") % x


def yes(b):
    return "n/a" if b is None else ("**yes**" if b else "**NO**")
