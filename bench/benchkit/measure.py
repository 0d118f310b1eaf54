"""One contender's run, measured: timed (wall and CPU seconds, after an os.sync) or under strace (namespace-write
counts, see syscount.py); and how much CPU the rest of the machine used during the timed runs."""

import os
import resource
import shlex
import subprocess
import time

import syscount
from benchkit.machine import cpu_count

NCPU = cpu_count()
FOREIGN = []        # per timed run: (CPU s used by everything else, wall s x cores) -- is the machine busy?


def foreign_cpu_share():
    """The CPU used outside the measured commands, as a share of all cores during the timed runs (None: unknown)."""
    capacity = sum(c for _, c in FOREIGN)
    return sum(f for f, _ in FOREIGN) / capacity if FOREIGN and capacity > 0 else None


def run_plain(cmd):
    """Run without strace; returns (rc, wall seconds, cpu seconds of children, proc)."""
    os.sync()                                   # earlier writeback must not bill this run
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0 = _busy_cpu_seconds()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    wall = time.perf_counter() - t0
    b1 = _busy_cpu_seconds()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if b0 is not None and b1 is not None and wall > 0:
        # CPU that other processes on the machine used meanwhile, as a share of all cores
        FOREIGN.append((max(0.0, (b1 - b0) - cpu), wall * NCPU))
    return proc.returncode, wall, cpu, proc


def _busy_cpu_seconds():
    """Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    if not parts or parts[0] != "cpu":
        return None
    v = [int(x) for x in parts[1:9]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]     # user nice system irq softirq steal
    return busy / float(os.sysconf("SC_CLK_TCK"))


def run_contender(c, rnd, phase, trace_dir):
    """Contender ``c`` in round ``rnd``: under strace (phase "strace") or timed; fails the benchmark if it fails."""
    cmd = c.cmd()
    rec = {"round": rnd, "phase": phase}
    if phase == "strace":
        rc, proc = _traced(c, cmd, rnd, trace_dir, rec)
    else:
        rc, rec["wall"], rec["cpu"], proc = run_plain(cmd)
    rec["rc"] = rc
    rec.update(c.extra_info(proc))
    if not c.ok(rc):
        raise SystemExit("%s failed in round %d (rc %d)\ncmd: %s\nstdout: %s\nstderr: %s" % (
            c.label, rnd, rc, " ".join(map(shlex.quote, cmd)), proc.stdout[-3000:],
            proc.stderr[-3000:]))
    c.runs.append(rec)
    return rec


def _traced(c, cmd, rnd, trace_dir, rec):
    os.sync()
    t0 = time.perf_counter()
    rc, counts, proc = syscount.run_counted(
        cmd, trace_file=os.path.join(trace_dir, "%s-r%03d.txt" % (c.key, rnd)))
    rec["wall_strace"] = time.perf_counter() - t0
    rec["writes"] = counts
    return rc, proc
