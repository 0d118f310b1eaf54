"""Which engine a benchmark runs: the repository's commit (and whether the engine has uncommitted changes), or the
engine as committed at a revision, exported into the workdir so edits in progress cannot leak into a measurement."""

import os
import subprocess
import sys

from benchkit import REPO


def export_engine(rev, work):
    """git archive REV assets/scripts into WORK/engine-src; returns (engine path, description)."""
    sha = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", rev + "^{commit}"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout.strip()
    dest = os.path.join(work, "engine-src")
    os.makedirs(dest)
    archive = subprocess.Popen(["git", "-C", REPO, "archive", sha, "assets/scripts"], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", dest], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait() != 0:
        raise SystemExit("git archive %s assets/scripts failed" % sha)
    precompile(os.path.join(dest, "assets", "scripts"))
    return (os.path.join(dest, "assets", "scripts", "efs-backup-engine"),
            "%s (engine exported from this commit with --engine-rev %s)" % (sha, rev))


def precompile(scripts):
    """Byte-compile the engine once, as a worker's first engine process does (its prepare step runs before the
    streams start). Without it, under PYTHONDONTWRITEBYTECODE (set on some machines) every engine process of
    every run would compile every module again, a CPU cost no deployed worker pays."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", scripts], check=True, stdout=subprocess.DEVNULL)


def repo_commit():
    """HEAD of the repository, and whether the engine's files differ from it (work in progress)."""
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "assets/scripts"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True).stdout.strip()
    except OSError:
        return "?"
    if not head:
        return "?"
    return head + (" (assets/scripts has uncommitted changes)" if dirty else "")
