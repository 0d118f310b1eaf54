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


# rsync reads the names to copy from its stdin (run_rsync's files_from), NUL-terminated: any byte but NUL.
FILES_FROM = ["--files-from=-", "--from0"]


def files_from(paths):
    """run_rsync's files_from naming exactly `paths` (str or bytes, relative to the source directory), for
    FILES_FROM.

    Each is sent as ./PATH. rsync 3.5 skips a --files-from entry that starts with '#' or ';' as a comment, even
    with --from0 (RsyncProject/rsync pull request 977): a changed file named '#notes' would be left out of the
    copy, rsync exiting 0. './' is dropped by rsync's own path cleaning, so the name copied is PATH."""
    return b"".join(b"./" + os.fsencode(path) + b"\0" for path in paths)


def run_rsync(args, files_from=None, pass_fds=()):
    proc = subprocess.run(["rsync"] + args, input=files_from, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=rsync_env(), pass_fds=pass_fds)
    return proc.returncode, proc.stdout, proc.stderr


def fd_path(fd):
    """A path rsync opens as exactly the directory fd refers to (inherited through pass_fds)."""
    return "/proc/self/fd/%d/" % fd
