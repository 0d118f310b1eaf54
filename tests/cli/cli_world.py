"""The CLI tests' world: tests/orchestration/moto_world.py's ``deployed_world`` (the synthesized ``example`` stack
deployed into moto, both state machines executing, tmpfs file systems, the simulated worker fleet) with a small
production tree; ``run_cli``: the CLI in-process with the moto credentials and endpoint in its environment,
returning (exit code, stdout, stderr).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Dict, Iterator, Optional

from moto_world import deployed_world

HEARTBEAT_TIMEOUT = 20  # as tests/orchestration: a simulated worker's first beat on a busy 2-core machine


@contextlib.contextmanager
def cli_world(workdir: Path) -> Iterator[object]:
    """moto_world.deployed_world (the stack deployed, both state machines executing, tmpfs file systems, the fleet)
    with a small production tree, ``env()`` for the CLI and ``state`` for the scenarios to share."""
    with deployed_world(workdir, worker_heartbeat_timeout_seconds=str(HEARTBEAT_TIMEOUT)) as world:
        for top in ("alpha", "beta", "with space"):
            (world.source / top).mkdir()
            for number in range(4):
                (world.source / top / f"file{number}.txt").write_text(f"{top} {number} v1\n" * 50)
        world.env = lambda: dict(world.moto.env)
        world.state = {}
        yield world


def run_cli(monkeypatch, env: Dict[str, str], *argv: str, stdin: Optional[io.StringIO] = None):
    """The CLI's main() in-process: (exit code, stdout, stderr)."""
    from efs_backup_cli.main import main

    with monkeypatch.context() as patch:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "EFS_BACKUP_ENV"):
            patch.delenv(key, raising=False)
        for key, value in env.items():
            patch.setenv(key, value)
        if stdin is not None:
            patch.setattr("sys.stdin", stdin)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    return code, out.getvalue(), err.getvalue()
