"""Running rsync: the engine's common options, how its exit and messages are judged, and how it is handed a
directory fd. Backups (sync.py) and restores (restore.py) run it through here."""

import os
import subprocess

# --modify-window=-1: compare mtimes to the nanosecond. rsync's default (whole seconds) misses a same-size edit
# made within the second of the previous copy, and leaves directory times off by up to a second.
RSYNC_BASE = ["-a", "-H", "-S", "-x", "--numeric-ids", "--modify-window=-1", "--stats"]


def rsync_env():
    env = dict(os.environ)
    env["LC_ALL"] = "C"  # escape every non-ASCII byte in output so names parse exactly
    return env


# stderr lines of rsync that a source-side problem explains (rsync >= 3.2 tags its messages with the role).
_SENDER_SIDE = ("[sender]", "file has vanished", "IO error encountered -- skipping file deletion")
_SUMMARIES = ("rsync error: some files", "rsync warning: some files")


def classify(exit_code, stderr):
    """(status, messages) for an rsync exit: ok, warning (source-side trouble on a live FS) or failed.

    Exit 24 (files vanished) is a warning. Exit 23 is a warning only when every message is the sending side's
    (unreadable or vanished source files) or rsync's closing summary: any other line — a receiver or generator
    error, or an untagged message such as "could not make way for new regular file" — means writing the
    destination went wrong, and the part fails. Every other exit code fails too.
    """
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    if exit_code == 0:
        return "ok", lines
    if exit_code == 24:
        return "warning", lines
    if exit_code == 23 and lines and all(any(mark in line for mark in _SENDER_SIDE) or line.startswith(_SUMMARIES)
                                         for line in lines):
        return "warning", lines
    return "failed", lines or ["rsync exited with code %d" % exit_code]


def recursion(recursive):
    """rsync's options for directories it is given: whole (-r), or only themselves (-d, -a's -r turned off)."""
    return ["-r"] if recursive else ["--no-r", "-d"]


# Bytes of names rsync may be given on its command line (run_listed). Linux refuses an exec whose arguments and
# environment together exceed a quarter of the stack limit, which sysconf(ARG_MAX) reports (execve(2), "Limits on
# size of arguments and environment"); a quarter of that leaves the rest to the environment.
ARGS_BUDGET = os.sysconf("SC_ARG_MAX") // 4


def run_listed(options, paths, src_fd, dst_fd, pass_fds, recursive=False):
    """rsync with `options`, copying exactly `paths` (str or bytes, relative to the directory src_fd) to the same
    relative paths below dst_fd: directories among them whole if `recursive`, else without their entries; no
    parent directories either if options has --no-implied-dirs. Returns run_rsync's (exit code, stdout, stderr).

    While they fit in ARGS_BUDGET the names are rsync's arguments, SRC/./PATH with -R (what follows /./ is the
    path made below the destination). Beyond, they go through --files-from on stdin, which rsync reads one byte
    per read(2), each after a select(2): about 1 us a byte, 0.05 s for the 850 changed files of the
    100,000-file benchmark (bench/README.md). Either way the list has no limit: a command line of every name
    could exceed the exec limit (a batch part's first copy names up to parts.MAX_PART_FILES directories). Names
    on the command line show in the process list while rsync runs, to the users of the machine running it.

    Entries of --files-from are sent as ./PATH: rsync 3.5 skips an entry that starts with '#' or ';' as a
    comment, even with --from0 (RsyncProject/rsync pull request 977), so a changed file named '#notes' was left
    out of the copy with rsync exiting 0. rsync's path cleaning drops the './'."""
    src = os.fsencode(fd_path(src_fd))
    names = [os.fsencode(path) for path in paths]
    options = options + recursion(recursive)
    if names and sum(len(src) + len(name) + 3 + 8 for name in names) <= ARGS_BUDGET:  # "./", NUL, argv pointer
        return run_rsync(options + ["-R"] + [src + b"./" + name for name in names] + [fd_path(dst_fd)],
                         pass_fds=pass_fds)
    return run_rsync(options + ["--files-from=-", "--from0", fd_path(src_fd), fd_path(dst_fd)],
                     files_from=b"".join(b"./" + name + b"\0" for name in names), pass_fds=pass_fds)


def run_rsync(args, files_from=None, pass_fds=()):
    proc = subprocess.run(["rsync"] + args, input=files_from, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=rsync_env(), pass_fds=pass_fds)
    return proc.returncode, proc.stdout, proc.stderr


def fd_path(fd):
    """A path rsync opens as exactly the directory fd refers to (inherited through pass_fds)."""
    return "/proc/self/fd/%d/" % fd
