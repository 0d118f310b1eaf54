"""Test harness for the engine: runs the real command line against local directories."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = os.path.join(REPO, "assets", "scripts", "efs-backup-engine")
# Root without the capabilities that let it read any file: what NFS root squashing does to a worker reading the
# source (/work/shared/NOTES.md). Prefix a command with it; mode-000 directories then fail to open.
WITHOUT_READ_OVERRIDE = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_read_search,-dac_override"]


class Engine:
    """Runs the real engine command line (the same launcher the workers use) against local directories."""

    def __init__(self, tmp_path):
        self.source = str(tmp_path / "source")
        self.root = str(tmp_path / "backup")
        self.wrapper = []  # a command prefix for the engine process, e.g. WITHOUT_READ_OVERRIDE
        os.makedirs(self.source, exist_ok=True)
        os.makedirs(self.root, exist_ok=True)
        self.init()

    def cli(self, *args, check=None):
        proc = subprocess.run(self.wrapper + [sys.executable, ENGINE] + [str(a) for a in args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=300)
        if check is not None:
            assert proc.returncode == check, (proc.returncode, proc.stdout.decode(), proc.stderr.decode())
        return proc

    def init(self):
        return self.cli("init", "--backup-root", self.root, check=0)

    def backup(self, interval="daily", retain=3, workers=1, backup_id="prod", expect=0, extra=()):
        proc = self.cli("backup", "--source", self.source, "--backup-root", self.root, "--id", backup_id,
                        "--interval", interval, "--retain", retain, "--workers", workers, "--json", "--quiet",
                        *extra, check=expect)
        lines = proc.stdout.decode().strip().splitlines()
        return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None

    def restore(self, target, *args, expect=0, backup_id="prod"):
        """Run `restore` with --json; returns the summary (or, with no JSON line, e.g. on refusal, the process)."""
        proc = self.cli("restore", "--backup-root", self.root, "--id", backup_id, "--target", target, "--json",
                        "--quiet", *args, check=expect)
        lines = proc.stdout.decode().strip().splitlines()
        return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else proc

    def state(self, *parts, backup_id="prod"):
        return os.path.join(self.root, backup_id, ".efs-backup", *parts)

    def snapshot(self, name, backup_id="prod"):
        return os.path.join(self.root, backup_id, name)

    def snapshots(self, backup_id="prod"):
        names = os.listdir(os.path.join(self.root, backup_id))
        return sorted(n for n in names if not n.startswith("."))

    def list(self, backup_id="prod"):
        return json.loads(self.cli("list", "--backup-root", self.root, "--id", backup_id, "--json",
                                   check=0).stdout)
