#!/usr/bin/env python3
"""Count namespace- and metadata-modifying system calls of a command with strace.

The command runs under ``strace -f --seccomp-bpf -qq -s 0 -e trace=<set> -o FILE``
(all threads and child processes, only the syscalls below stopped, strings elided),
and every call in FILE is counted, successful or not (a failed call still costs
a round trip on NFS/EFS):

* namespace writes ("ns"): mkdir, mkdirat, link, linkat, unlink, unlinkat, rename,
  renameat, renameat2, rmdir, symlink, symlinkat, mknod, mknodat, creat, and
  open/openat/openat2 **with O_CREAT** (counted as "create"; an O_CREAT open of a file
  that already exists is counted too -- strace cannot tell them apart cheaply);
* attribute writes ("attr"): chmod, fchmod, fchmodat, fchmodat2, chown, fchown,
  lchown, fchownat, utime, utimes, utimensat, futimesat, and the (f/l)setxattr /
  (f/l)removexattr family.

``total = ns + attr`` is what the benchmark calls "namespace writes".
Data writes (write, copy_file_range, ftruncate, fsync) and reads are not counted.
"""

import os
import re
import subprocess
import sys
import tempfile

NS_CALLS = ("mkdir", "mkdirat", "link", "linkat", "unlink", "unlinkat", "rename",
            "renameat", "renameat2", "rmdir", "symlink", "symlinkat", "mknod", "mknodat",
            "creat")
OPEN_CALLS = ("open", "openat", "openat2")
ATTR_CALLS = ("chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown",
              "fchownat", "utime", "utimes", "utimensat", "futimesat", "setxattr",
              "lsetxattr", "fsetxattr", "removexattr", "lremovexattr", "fremovexattr")

STRACE = os.environ.get("BENCH_STRACE", "/usr/bin/strace")

_START = re.compile(r"^(\d+)\s+([a-z_0-9]+)\((.*)$")
_RESUMED = re.compile(r"^(\d+)\s+<\.\.\. ([a-z_0-9]+) resumed>(.*)$")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+|\?)")

_known = None


def known_syscalls():
    """The names of NS/OPEN/ATTR calls this strace knows (fchmodat2 is recent, for one)."""
    global _known
    if _known is None:
        ok = []
        for name in NS_CALLS + OPEN_CALLS + ATTR_CALLS:
            r = subprocess.run([STRACE, "-qq", "-o", os.devnull, "-e", "trace=" + name, "true"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                ok.append(name)
        _known = tuple(ok)
    return _known


def parse(lines):
    """Parse strace -f output lines.  Returns a counts dict (see ``summarize``)."""
    calls = {}
    errors = {}
    creates = 0
    create_errors = 0
    pending = {}  # pid -> (name, is_create)

    def finish(name, is_create, text):
        nonlocal create_errors
        m = _RESULT.search(text)
        if m and m.group(1).startswith("-"):
            if is_create:
                create_errors += 1
            else:
                errors[name] = errors.get(name, 0) + 1

    for line in lines:
        m = _START.match(line)
        if m:
            pid, name, rest = m.groups()
            is_create = False
            if name in OPEN_CALLS:
                if "O_CREAT" not in rest:
                    continue
                is_create = True
                creates += 1
            else:
                calls[name] = calls.get(name, 0) + 1
            if rest.rstrip().endswith("<unfinished ...>"):
                pending[pid] = (name, is_create)
            else:
                finish(name, is_create, rest)
            continue
        m = _RESUMED.match(line)
        if m:
            pid, name, rest = m.groups()
            p = pending.pop(pid, None)
            if p is not None:
                finish(p[0], p[1], rest)
    return summarize(calls, errors, creates, create_errors)


def summarize(calls, errors, creates, create_errors):
    ns = sum(v for k, v in calls.items() if k in NS_CALLS) + creates
    attr = sum(v for k, v in calls.items() if k in ATTR_CALLS)
    per = dict(sorted(calls.items()))
    if creates:
        per["open(O_CREAT)"] = creates
    err = dict(sorted(errors.items()))
    if create_errors:
        err["open(O_CREAT)"] = create_errors
    return {"ns": ns, "attr": attr, "total": ns + attr, "calls": per, "errors": err,
            "failed": sum(err.values())}


def run_counted(cmd, trace_file=None, keep=False, **popen_kw):
    """Run ``cmd`` under strace; return (returncode, counts, completed_process).

    stdout/stderr of the command are captured (text).
    """
    own = trace_file is None
    if own:
        fd, trace_file = tempfile.mkstemp(prefix="bench-strace-", suffix=".txt")
        os.close(fd)
    names = known_syscalls()
    argv = [STRACE, "-f", "--seccomp-bpf", "-qq", "-s", "0", "-o", trace_file,
            "-e", "trace=" + ",".join(names), "--"] + list(cmd)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, **popen_kw)
    try:
        with open(trace_file, encoding="utf-8", errors="replace") as f:
            counts = parse(f)
    finally:
        if own or not keep:
            try:
                os.unlink(trace_file)
            except FileNotFoundError:
                pass
    return proc.returncode, counts, proc


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("usage: syscount.py CMD [ARGS...]", file=sys.stderr)
        return 64
    rc, counts, proc = run_counted(argv)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    print("namespace writes: total=%(total)d ns=%(ns)d attr=%(attr)d failed=%(failed)d" % counts,
          file=sys.stderr)
    for k, v in counts["calls"].items():
        print("  %-16s %d" % (k, v), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
