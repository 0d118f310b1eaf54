"""What a benchmark ran on: the machine, its tools, the file system of the bench dir, the repository's commit."""

import os
import platform
import subprocess

import syscount
import treegen
from benchkit.engine_source import repo_commit


def cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _first_line(cmd):
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except OSError:
        return "not found"


def fs_type(path):
    """(fstype, mount point, device) of the file system holding ``path``, from /proc/mounts."""
    path = os.path.realpath(path)
    best = ("?", "?", "?")
    best_len = -1
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, typ = line.split()[:3]
                mnt = mnt.encode().decode("unicode_escape")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) > best_len:
                    best, best_len = (typ, mnt, dev), len(mnt)
    except OSError:
        pass
    return best


def _memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return "%.1f GiB" % (int(line.split()[1]) / 1024 / 1024)
    except OSError:
        pass
    return "?"


def machine_info(workdir):
    typ, mnt, dev = fs_type(workdir)
    return {
        "nproc": cpu_count(),
        "memory": _memory(),
        "kernel": platform.release(),
        "rsync": _first_line(["rsync", "--version"]),
        "strace": _first_line([syscount.STRACE, "-V"]),
        "python": platform.python_version(),
        "workdir": workdir,
        "fs_type": typ,
        "fs_mount": mnt,
        "fs_device": dev,
        "user": "root" if treegen.IS_ROOT else "uid %d" % os.geteuid(),
        "commit": repo_commit(),
    }
