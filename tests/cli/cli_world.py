"""One deployed efs-backup environment in moto for the CLI tests, composed from tests/orchestration/moto_world.py:
the synthesized ``example`` stack deployed into moto's CloudFormation, its state machine re-created in the executing
backend, two tmpfs file systems and the simulated worker fleet. Plus ``run_cli``: the CLI in-process with the moto
credentials and endpoint in its environment, returning (exit code, stdout, stderr).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from moto_world import (ACCOUNT, MotoServer, WorkerFleet, copy_scripts_into_bucket, create_network, deploy,
                        recreate_state_machine, synth_for_moto, upload_assets)

RESTORE_DOUBLE = {
    "Comment": "stand-in for the restore state machine: answers with a contract-shaped summary, echoes the request",
    "StartAt": "Answer",
    "States": {"Answer": {"Type": "Pass", "End": True, "Parameters": {
        "outcome": "success",
        "summary": {
            "kind": "restore", "status": "success", "mode": "safe", "paths": [],
            "snapshot_id.$": "States.ArrayGetItem(States.StringSplit($.snapshot, ':'), 1)",
            "target.$": "$.target_path", "dry_run.$": "$.dry_run", "request.$": "$",
            "plan": {"create": {"files": 2, "bytes": 2048}, "overwrite": {"files": 1, "bytes": 10},
                     "delete": {"files": 0, "bytes": 0}, "skip_newer": {"files": 1, "bytes": 5},
                     "samples": {"create": ["alpha/file0.txt", "gamma/new.txt"]}},
            "totals": {"files_scanned": 17, "files_transferred": 3, "bytes_transferred": 2058},
            "failed_parts": [], "failed_count": 0}}}},
}


def create_restore_double(moto: MotoServer, name: str) -> str:
    sfn = moto.client("stepfunctions")
    return sfn.create_state_machine(name=name, definition=json.dumps(RESTORE_DOUBLE), type="STANDARD",
                                    roleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}")["stateMachineArn"]


HEARTBEAT_TIMEOUT = 20  # as tests/orchestration: a simulated worker's first beat on a busy 2-core machine


def can_bind_mount(tmp: Path) -> bool:
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    if os.geteuid() != 0:
        return False
    ok = subprocess.run(["mount", "--bind", str(tmp / "a"), str(tmp / "b")], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(tmp / "b")], check=False)
    return ok


@dataclass
class CliWorld:
    moto: MotoServer
    fleet: WorkerFleet
    synth: object
    arn: str
    source: Path
    backup: Path
    table: str
    log_group: str
    filesystems: List[Path]
    restore_arn: Optional[str] = None

    def env(self) -> Dict[str, str]:
        return dict(self.moto.env)

    def stop(self) -> None:
        self.fleet.stop()
        for directory in reversed(self.filesystems):
            subprocess.run(["umount", "-l", str(directory)], check=False)
        self.moto.stop()


def build(workdir: Path) -> CliWorld:
    moto = MotoServer(workdir)
    filesystems: List[Path] = []
    try:
        network = create_network(moto)
        synth = synth_for_moto(workdir / "cdk", network, worker_heartbeat_timeout_seconds=str(HEARTBEAT_TIMEOUT))
        stack = synth.stack
        sources = upload_assets(moto, workdir / "cdk", stack.stack_name)
        resources = deploy(moto, synth.template_json, stack.stack_name)

        def physical(construct):
            return resources[stack.get_logical_id(construct.node.default_child)]["PhysicalResourceId"]

        copy_scripts_into_bucket(moto, physical(stack.scripts.bucket), stack.scripts.script_key_prefix,
                                 sources[stack.scripts.asset_hash])
        arn, _ = recreate_state_machine(moto, synth.template_json, resources, stack.workflow.state_machine_name,
                                        f"arn:aws:iam::{ACCOUNT}:role/{physical(stack.workflow.role)}")
        source, backup = workdir / "production", workdir / "backup"
        for directory in (source, backup):
            directory.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(directory)], check=True)
            filesystems.append(directory)
        for top in ("alpha", "beta", "with space"):
            for number in range(4):
                (source / top).mkdir(exist_ok=True)
                (source / top / f"file{number}.txt").write_text(f"{top} {number} v1\n" * 50)
        # moto's CloudFormation keeps the state machines it creates in a backend that does not execute; the
        # backup one is re-created from its definition above, the restore one (when the stack has it) is the
        # stand-in that answers per the contract, under the deployed name (so discovery by output finds it).
        outputs = {o["OutputKey"]: o["OutputValue"] for o in moto.client("cloudformation").describe_stacks(
            StackName=stack.stack_name)["Stacks"][0].get("Outputs", [])}
        restore_arn = None
        if outputs.get("RestoreStateMachineArn"):
            restore_arn = create_restore_double(moto, outputs["RestoreStateMachineArn"].rsplit(":", 1)[1])
        fleet = WorkerFleet(moto, workdir, source, backup)
    except BaseException:
        for directory in reversed(filesystems):
            subprocess.run(["umount", "-l", str(directory)], check=False)
        moto.stop()
        raise
    return CliWorld(moto, fleet, synth, arn, source, backup, physical(stack.workflow.table),
                    physical(stack.launch_template.log_group), filesystems, restore_arn)


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
