#!/usr/bin/env python3
"""The benchmark's latency model: build the LD_PRELOAD shim, run commands under it, read its counts.

* ``build(dest_dir)`` compiles ``latency_shim.c`` with the system ``cc`` into ``dest_dir/latency_shim.so``.
* ``shim_env(shim, prefixes, latency_us, count_dir)`` is the environment that makes a command (and every
  process it forks, vforks or execs) count, and delay by ``latency_us``, each metadata call under ``prefixes``.
* ``read_counts(count_dir)`` sums the per-process count files: calls per kind, per executable, total.
* ``strace_counts(lines, prefixes, cwd)`` classifies an ``strace -f -y`` trace the same way, from the kernel's
  side, to validate the shim (tests/bench/test_latency_model.py).

    python3 bench/latency.py --prefix /data --latency-ms 1 -- CMD ARGS...   # run one command, print its counts

Python 3.9+, stdlib only.
"""

import argparse
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "latency_shim.c")
HEADER_SIZE = 512

KINDS = ("open", "stat", "getdents", "readlink", "access", "statfs", "chdir", "mkdir", "rmdir", "unlink",
         "link", "symlink", "rename", "mknod", "chmod", "chown", "utimes")

# strace syscall name -> (kind, indexes of the (dirfd, path) pairs that name files; None = no dirfd)
SYSCALLS = {
    "open": ("open", [(None, 0)]), "creat": ("open", [(None, 0)]),
    "openat": ("open", [(0, 1)]), "openat2": ("open", [(0, 1)]),
    "stat": ("stat", [(None, 0)]), "lstat": ("stat", [(None, 0)]), "fstat": ("stat", [(0, None)]),
    "newfstatat": ("stat", [(0, 1)]), "statx": ("stat", [(0, 1)]),
    "getdents64": ("getdents", [(0, None)]), "getdents": ("getdents", [(0, None)]),
    "readlink": ("readlink", [(None, 0)]), "readlinkat": ("readlink", [(0, 1)]),
    "access": ("access", [(None, 0)]), "faccessat": ("access", [(0, 1)]), "faccessat2": ("access", [(0, 1)]),
    "statfs": ("statfs", [(None, 0)]), "fstatfs": ("statfs", [(0, None)]),
    "chdir": ("chdir", [(None, 0)]), "fchdir": ("chdir", [(0, None)]),
    "mkdir": ("mkdir", [(None, 0)]), "mkdirat": ("mkdir", [(0, 1)]),
    "rmdir": ("rmdir", [(None, 0)]), "unlink": ("unlink", [(None, 0)]), "unlinkat": ("unlink", [(0, 1)]),
    "link": ("link", [(None, 0), (None, 1)]), "linkat": ("link", [(0, 1), (2, 3)]),
    "symlink": ("symlink", [(None, 1)]), "symlinkat": ("symlink", [(1, 2)]),
    "rename": ("rename", [(None, 0), (None, 1)]), "renameat": ("rename", [(0, 1), (2, 3)]),
    "renameat2": ("rename", [(0, 1), (2, 3)]),
    "mknod": ("mknod", [(None, 0)]), "mknodat": ("mknod", [(0, 1)]),
    "chmod": ("chmod", [(None, 0)]), "fchmod": ("chmod", [(0, None)]), "fchmodat": ("chmod", [(0, 1)]),
    "chown": ("chown", [(None, 0)]), "lchown": ("chown", [(None, 0)]), "fchown": ("chown", [(0, None)]),
    "fchownat": ("chown", [(0, 1)]),
    "utimensat": ("utimes", [(0, 1)]), "utimes": ("utimes", [(None, 0)]), "utime": ("utimes", [(None, 0)]),
    "futimesat": ("utimes", [(0, 1)]),
}
FORKS = ("clone", "clone3", "fork", "vfork")
ENV_PREFIXES, ENV_US, ENV_COUNTS = "EFSB_LATENCY_PREFIXES", "EFSB_LATENCY_US", "EFSB_LATENCY_COUNTS"


# ----------------------------------------------------------------------------- build and run

def compiler():
    """The system C compiler (cc, else gcc), or None."""
    return shutil.which("cc") or shutil.which("gcc")


def build(dest_dir):
    """Compile the shim into dest_dir; returns the .so path.  Raises RuntimeError without a compiler."""
    cc = compiler()
    if not cc:
        raise RuntimeError("no C compiler (cc/gcc): install gcc (tools/setup.sh does) to build the latency shim")
    os.makedirs(dest_dir, exist_ok=True)
    out = os.path.join(dest_dir, "latency_shim.so")
    subprocess.run([cc, "-O2", "-Wall", "-shared", "-fPIC", "-o", out, SOURCE, "-ldl", "-lpthread"], check=True)
    return out


def shim_env(shim, prefixes, latency_us, count_dir, base=None):
    """Environment for a command run under the model (LD_PRELOAD added to any existing preload)."""
    env = dict(os.environ if base is None else base)
    canon = [os.path.realpath(p) for p in prefixes]
    for p in canon:
        if ":" in p:
            raise ValueError("a latency prefix cannot contain ':': %r" % p)
    real_counts = os.path.realpath(count_dir)
    if any(real_counts == p or real_counts.startswith(p.rstrip("/") + "/") for p in canon):
        raise ValueError("the count directory %s must not be under a latency prefix" % count_dir)
    env["LD_PRELOAD"] = shim + (" " + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    env[ENV_PREFIXES] = ":".join(canon)
    env[ENV_US] = str(int(round(latency_us)))
    env[ENV_COUNTS] = real_counts
    return env


# ----------------------------------------------------------------------------- counts

def read_count_file(path):
    """One process's counts: {"pid", "exe", "counts": {kind: n}, "slept_ns", "unresolved"}."""
    with open(path, "rb") as f:
        data = f.read()
    header = data[:HEADER_SIZE].decode("utf-8", "replace")
    fields = {}
    for line in header.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            fields[key] = value
    if not header.startswith("efsb-latency-counts 1"):
        raise ValueError("%s: not a latency count file" % path)
    kinds = fields["kinds"].split(",")
    values = struct.unpack_from("<%dQ" % (len(kinds) + 2), data, HEADER_SIZE)
    return {"pid": int(fields["pid"]), "exe": os.path.basename(fields.get("exe", "?")),
            "counts": dict(zip(kinds, values[:len(kinds)])), "slept_ns": values[len(kinds)],
            "unresolved": values[len(kinds) + 1]}


def read_counts(count_dir):
    """Sum of every process's counts in count_dir: {"kinds", "total", "by_exe", "processes", ...}."""
    kinds = {k: 0 for k in KINDS}
    by_exe = {}
    procs = slept = unresolved = 0
    for name in sorted(os.listdir(count_dir)):
        if not name.endswith(".cnt"):
            continue
        one = read_count_file(os.path.join(count_dir, name))
        procs += 1
        slept += one["slept_ns"]
        unresolved += one["unresolved"]
        n = 0
        for k, v in one["counts"].items():
            kinds[k] = kinds.get(k, 0) + v
            n += v
        by_exe[one["exe"]] = by_exe.get(one["exe"], 0) + n
    return {"kinds": kinds, "total": sum(kinds.values()), "by_exe": by_exe, "processes": procs,
            "slept_s": slept / 1e9, "unresolved": unresolved}


def run(cmd, shim, prefixes, latency_us, count_dir=None, **kw):
    """Run cmd under the model; returns (completed process, wall s, child CPU s, counts)."""
    own = count_dir is None
    if own:
        count_dir = tempfile.mkdtemp(prefix="efsb-latency-counts-")
    os.makedirs(count_dir, exist_ok=True)
    env = shim_env(shim, prefixes, latency_us, count_dir, base=kw.pop("env", None))
    r0 = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **kw)
    wall = time.perf_counter() - t0
    r1 = os.times()
    cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    counts = read_counts(count_dir)
    if own:
        shutil.rmtree(count_dir, ignore_errors=True)
    return proc, wall, cpu, counts


# ----------------------------------------------------------------------------- strace side (validation)

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_START = re.compile(r"^([a-z_0-9]+)\((.*)$")
_RESUMED = re.compile(r"^<\.\.\. ([a-z_0-9]+) resumed>(.*)$")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+|\?)")
_FD = re.compile(r"^(-?\d+|AT_FDCWD)<(.*)>$")


def _split_args(text):
    """Top-level comma-separated arguments of an strace call line (quotes, brackets and <...> respected)."""
    args, cur, depth, i, quote = [], [], 0, 0, False
    while i < len(text):
        c = text[i]
        if quote:
            cur.append(c)
            if c == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 1
            elif c == '"':
                quote = False
        elif c == '"':
            quote = True
            cur.append(c)
        elif c in "[{(<":
            depth += 1
            cur.append(c)
        elif c in "]})>":
            if depth == 0 and c == ")":
                break
            depth -= 1
            cur.append(c)
        elif c == "," and depth == 0:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        args.append("".join(cur).strip())
    return args


def _unquote(arg):
    if arg == "NULL":
        return ""
    if len(arg) >= 2 and arg[0] == '"':
        end = arg.rfind('"')
        return arg[1:end]
    return None


def _join(base, path):
    if path.startswith("/"):
        full = path
    elif base is None:
        return None
    else:
        full = base + "/" + path
    return os.path.normpath(full).replace("//", "/")


_DECORATED = re.compile(r"(?<![\w<])(\d+)<(/[^>]*)>")
_MAGIC = re.compile(r"^/proc/self/fd/(\d+)(/.+)?$")


def _magic(path, fds, follow_last):
    """/proc/self/fd/N[/PATH] (the engine names rsync's sources /proc/self/fd/N/./PATH, and rsync opens
    /proc/self/fd/N itself for each file it sends): the kernel follows the link to what fd N is, so the directory
    the process knows as fd N, and PATH below it. A call that does not follow the link itself (follow_last false:
    readlink) reads procfs's link and stays as it is, as in the shim."""
    m = _MAGIC.match(path) if path is not None else None
    if not m or m.group(1) not in fds or not (m.group(2) or follow_last):
        return path
    return os.path.normpath(fds[m.group(1)] + (m.group(2) or ""))


def _under(path, prefixes):
    return path is not None and any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _fork_children(lines):
    """Pass 1: index of each fork-family start line -> the child pid it returned."""
    children, pending = {}, {}
    for i, line in enumerate(lines):
        m = _LINE.match(line)
        if not m:
            continue
        pid, rest = m.groups()
        s = _START.match(rest)
        if s and s.group(1) in FORKS:
            if rest.rstrip().endswith("<unfinished ...>"):
                pending[pid] = i
            else:
                r = _RESULT.search(rest)
                if r and r.group(1).isdigit():
                    children[i] = r.group(1)
            continue
        s = _RESUMED.match(rest)
        if s and s.group(1) in FORKS and pid in pending:
            r = _RESULT.search(rest)
            start = pending.pop(pid)
            if r and r.group(1).isdigit():
                children[start] = r.group(1)
    return children


def strace_counts(lines, prefixes, cwd):
    """Calls per kind under prefixes in an ``strace -f -y -s 4096 -e trace=...`` output (one run).

    Relative paths of non-*at calls are resolved against each process's working directory, followed
    through chdir/fchdir and inherited over fork/clone/vfork (cwd: the first process's directory). A path
    through /proc/self/fd/N is resolved with the path strace -y last showed for fd N in that process (or in its
    parent before the fork: an inherited fd)."""
    lines = list(lines)
    prefixes = [os.path.realpath(p) for p in prefixes]
    children = _fork_children(lines)
    cwds = {}
    fds = {}         # pid -> {fd: path}, from strace -y's decorations
    pending = {}     # pid -> (name, kind, paths) of an unfinished chdir (applied when it succeeds)
    kinds = {k: 0 for k in KINDS}
    for i, line in enumerate(lines):
        m = _LINE.match(line)
        if not m:
            continue
        pid, rest = m.groups()
        cwds.setdefault(pid, cwd)
        known = fds.setdefault(pid, {})
        s = _START.match(rest)
        if not s:
            known.update(_DECORATED.findall(rest))
            r = _RESUMED.match(rest)
            if r and pid in pending:
                _chdir_done(cwds, pid, pending.pop(pid), r.group(2))
            continue
        name, argtext = s.groups()
        unfinished = argtext.rstrip().endswith("<unfinished ...>")
        if unfinished:
            argtext = argtext.rstrip()[:-len("<unfinished ...>")]
        if name in FORKS and i in children:
            cwds[children[i]] = cwds[pid]
            fds[children[i]] = dict(known)
        if name not in SYSCALLS:
            known.update(_DECORATED.findall(rest))
            continue
        kind, pairs = SYSCALLS[name]
        args = _split_args(argtext)
        paths = []
        for fd_i, path_i in pairs:
            base = cwds[pid]
            if fd_i is not None:
                fm = _FD.match(args[fd_i]) if fd_i < len(args) else None
                base = fm.group(2) if fm else None
                if fm and fm.group(1) == "AT_FDCWD":
                    cwds[pid] = base
            path = ""
            if path_i is not None:
                path = _unquote(args[path_i]) if path_i < len(args) else None
            paths.append(_magic(_join(base, path), known, kind != "readlink") if path is not None else None)
        known.update(_DECORATED.findall(rest))  # after the paths: a returned fd is known from the next call on
        if name == "unlinkat" and len(args) > 2 and "AT_REMOVEDIR" in args[2]:
            kind = "rmdir"
        if any(_under(p, prefixes) for p in paths):
            kinds[kind] += 1
        if kind == "chdir":
            if unfinished:
                pending[pid] = paths[0]
            else:
                _chdir_done(cwds, pid, paths[0], rest)
    return {"kinds": kinds, "total": sum(kinds.values())}


def _chdir_done(cwds, pid, path, result_text):
    r = _RESULT.search(result_text)
    if path is not None and r and r.group(1) == "0":
        cwds[pid] = path


def strace_argv(trace_file):
    """strace options for strace_counts: every process, fds decoded to paths, whole strings."""
    names = sorted(set(SYSCALLS) | set(FORKS))
    return ["strace", "-f", "-qq", "-y", "-s", "4096", "-o", trace_file, "-e", "trace=" + ",".join(names), "--"]


# ----------------------------------------------------------------------------- command line

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prefix", action="append", required=True, help="a path whose tree is 'remote' (repeatable)")
    p.add_argument("--latency-ms", type=float, default=1.0, help="delay per metadata call (default 1)")
    p.add_argument("--build-dir", default=None, help="where to build the shim (default: a temporary directory)")
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        p.error("a command is required after --")
    build_dir = a.build_dir or tempfile.mkdtemp(prefix="efsb-latency-")
    shim = build(build_dir)
    proc, wall, cpu, counts = run(cmd, shim, a.prefix, a.latency_ms * 1000.0)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    print("wall %.3f s, CPU %.3f s, %d metadata calls in %d processes (slept %.3f s)" % (
        wall, cpu, counts["total"], counts["processes"], counts["slept_s"]), file=sys.stderr)
    for k, v in counts["kinds"].items():
        if v:
            print("  %-9s %d" % (k, v), file=sys.stderr)
    if not a.build_dir:
        shutil.rmtree(build_dir, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
