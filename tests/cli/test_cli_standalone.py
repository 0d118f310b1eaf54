"""The CLI stands alone: installed with ``pip install`` from the files pyproject.toml declares (efs_backup_cli and
efs_backup_contract, nothing else of the checkout), it runs with nothing but boto3 and its dependencies on its path,
and finds a deployment by its environment tag or its stack name, without cdk.json, aws-cdk-lib, stacks/ or
settings/.

The deployment is the real synthesized ``example`` stack deployed into a moto server (tests/orchestration/
moto_world.py) with the stack tags `cdk deploy` passes (those of the cloud assembly: none while the app tags only
its resources, see the report of issue 13), found by its environment; what the CLI reads from it is compared with
the configuration it was synthesized from. Small stacks in a second region stand for the cases of tags and names:
one found by its tag under another name, two of one environment, an unrelated stack.
The CLI runs in a subprocess with ``python -I -S`` and a sys.path of only the install target and a directory of
boto3's distribution closure, from an empty working directory; after each run it reports which modules it imported.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from moto_world import ACCOUNT, REGION, MotoServer, create_network, deploy, synth_for_moto, upload_assets

ROOT = Path(__file__).resolve().parents[2]
# What pyproject.toml builds the distribution from (its [tool.setuptools] packages and package-dir).
DISTRIBUTION_SOURCES = ("pyproject.toml", "efs_backup_cli", "assets/scripts/efs_backup_contract")
FORBIDDEN = ("aws_cdk", "jsii", "constructs", "stacks", "settings", "cdk_nag", "efs_backup_engine", "app")

BOOT = """
import atexit, json, runpy, sys
target, deps = sys.argv[1:3]
sys.path[:0] = [target, deps]
sys.argv = ["efs-backup"] + sys.argv[3:]

def report():
    sys.stderr.write("\\nIMPORTED " + json.dumps({
        "roots": sorted({name.split(".")[0] for name in sys.modules}),
        "cli": getattr(sys.modules.get("efs_backup_cli"), "__file__", None),
        "contract": getattr(sys.modules.get("efs_backup_contract"), "__file__", None),
        "boto3": getattr(sys.modules.get("boto3"), "__file__", None)}) + "\\n")

atexit.register(report)
runpy.run_module("efs_backup_cli", run_name="__main__", alter_sys=True)
"""


def closure(name, seen=None):
    """The installed distributions ``name`` needs (its requirements without extras, recursively)."""
    seen = set() if seen is None else seen
    key = name.lower().replace("_", "-")
    if key in seen:
        return seen
    seen.add(key)
    for requirement in importlib.metadata.requires(name) or []:
        if "extra ==" in requirement:
            continue
        closure(re.split(r"[ <>=!;(\[]", requirement, 1)[0], seen)
    return seen


def link_distributions(names, directory: Path) -> None:
    """A directory holding (as symlinks) the top-level packages and modules of these distributions only."""
    directory.mkdir()
    for name in names:
        distribution = importlib.metadata.distribution(name)
        for top in {Path(str(f)).parts[0] for f in distribution.files or []}:
            if top.endswith((".dist-info", ".egg-info")) or top in ("..", "__pycache__", "bin"):
                continue
            source = Path(distribution.locate_file(top))
            if source.exists() and not (directory / top).exists():
                (directory / top).symlink_to(source)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install --no-deps --target`` of a copy of the distribution's sources (pip builds in the source tree,
    so the checkout stays clean); boto3's closure linked beside it."""
    base = tmp_path_factory.mktemp("standalone")
    source = base / "source"
    for relative in DISTRIBUTION_SOURCES:
        origin, copy = ROOT / relative, source / relative
        copy.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(origin, copy)
    target = base / "target"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    deps = base / "deps"
    link_distributions(sorted(closure("boto3")), deps)
    workdir = base / "cwd"  # no cdk.json here or above (tmp_path_factory's base is under /tmp)
    workdir.mkdir()
    return target, deps, workdir


@pytest.fixture(scope="module")
def moto_stack(tmp_path_factory):
    """The example stack deployed into a fresh moto server, with its stack tags; yields (moto, synth)."""
    workdir = tmp_path_factory.mktemp("standalone-moto")
    moto = MotoServer(workdir)
    try:
        network = create_network(moto)
        synth = synth_for_moto(workdir / "cdk", network)
        upload_assets(moto, workdir / "cdk", synth.stack.stack_name)
        tags = [{"Key": k, "Value": v} for k, v in sorted(synth.stack.tags.tag_values().items())]
        deploy(TaggingDeployer(moto, tags), synth.template_json, synth.stack.stack_name)
        yield moto, synth
    finally:
        moto.stop()


class TaggingDeployer:
    """moto_world.deploy's server, creating the stack with the stack tags as `cdk deploy` passes them (the cloud
    assembly's stack tags)."""

    def __init__(self, moto, tags):
        self.moto, self.tags, self.url = moto, tags, moto.url

    def client(self, service):
        client = self.moto.client(service)
        if service == "cloudformation":
            create = client.create_stack
            client.create_stack = lambda **kwargs: create(Tags=self.tags, **kwargs)
        return client


def run(installed, *argv, env=None):
    """The installed CLI in ``python -I -S`` with only the target and boto3's closure: (code, stdout, stderr,
    imported)."""
    target, deps, workdir = installed
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
                   "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    environment.update(env or {})
    done = subprocess.run([sys.executable, "-I", "-S", "-c", BOOT, str(target), str(deps), *argv], cwd=workdir,
                          env=environment, capture_output=True, text=True, timeout=300)
    err, _, report = done.stderr.rpartition("\nIMPORTED ")
    assert report, done.stderr
    return done.returncode, done.stdout, err, json.loads(report)


def assert_standalone(installed, imported):
    target, deps, _ = installed
    assert not set(imported["roots"]) & set(FORBIDDEN), sorted(set(imported["roots"]) & set(FORBIDDEN))
    assert imported["cli"].startswith(str(target)) and imported["contract"].startswith(str(target))
    if imported["boto3"]:
        assert imported["boto3"].startswith(str(deps))


def test_the_distribution_holds_the_cli_and_the_contract_only(installed):
    target, _, _ = installed
    names = sorted(p.name for p in target.iterdir())
    assert [n for n in names if not n.endswith(".dist-info") and n != "bin"] == ["efs_backup_cli",
                                                                                "efs_backup_contract"]
    (info,) = [target / n for n in names if n.endswith(".dist-info")]
    assert "efs-backup = efs_backup_cli.main:main" in (info / "entry_points.txt").read_text()
    metadata = (info / "METADATA").read_text()
    assert re.findall(r"^Requires-Dist: (.*)$", metadata, re.M) == ["boto3"]


def test_help_runs_without_the_cdk_app(installed):
    code, out, err, imported = run(installed, "--help")
    assert code == 0, err
    assert "--stack NAME" in out and "--env" in out and "describe" in out
    assert_standalone(installed, imported)
    code, out, err, imported = run(installed, "--json", "--version")
    assert code == 0 and json.loads(out) == {"cli": json.loads(out)["cli"], "engine": None}, out + err


def moto_env(moto):
    return {"AWS_ENDPOINT_URL": moto.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}


def expected_settings(config):
    """What the deployment must say, from the configuration its template was synthesized from."""
    scheduled = {p.interval for p in config.retention if p.enabled and p.schedule and config.schedules_enabled}
    return {
        "retain": {p.interval: p.retain for p in config.retention},
        "schedules": {p.interval: (p.schedule if p.enabled else None) for p in config.retention},
        "stale_after_seconds": {p.interval: config.monitoring.stale_after_seconds(p.interval)
                                if p.interval in scheduled else None for p in config.retention},
        "stale_multiple": config.monitoring.stale_multiple,
        "default_workers": config.workers.count,
        "default_streams": config.workers.streams,
        "source_file_system_id": config.source_file_system_id,
        "restore_targets": [t.file_system_id for t in config.restore_targets],
    }


def test_found_by_environment_without_cdk_json(installed, moto_stack):
    moto, synth = moto_stack
    config = synth.config
    code, out, err, imported = run(installed, "--env", "example", "--json", "describe", env=moto_env(moto))
    assert code == 0, err
    assert_standalone(installed, imported)
    found = json.loads(out)
    assert (found["stack"], found["region"], found["environment"]) == (synth.stack.stack_name, REGION, "example")
    assert found["backup_id"] == config.backup_id and found["status"] == "CREATE_COMPLETE"
    assert {k: found[k] for k in expected_settings(config)} == expected_settings(config)
    assert found["outputs"]["StateMachineArn"].startswith(f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:")
    # The run history through the stack's output, by stack name this time (no environment given).
    code, out, err, imported = run(installed, "--stack", synth.stack.stack_name, "--json", "list",
                                   env=moto_env(moto))
    assert code == 0, err
    assert json.loads(out) == {"snapshots": []}
    assert_standalone(installed, imported)


OTHER_REGION = "eu-west-1"


def small_stack(moto, name, tags=(), outputs=()):
    """A stack of one topic in OTHER_REGION with these tags and literal outputs (the efs-backup outputs' names)."""
    body = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {key: {"Value": f"{key}-of-{name}"} for key in outputs}}
    client = boto3_client(moto, "cloudformation", OTHER_REGION)
    client.create_stack(StackName=name, TemplateBody=json.dumps(body),
                        Tags=[{"Key": k, "Value": v} for k, v in tags])


def boto3_client(moto, service, region):
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=moto.url, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


EFS_BACKUP_OUTPUTS = ("StateMachineArn", "RunHistoryTableName", "BackupId")


def test_found_by_tag_or_default_name_and_clear_errors_for_none_or_several(installed, moto_stack):
    moto, _ = moto_stack
    env = moto_env(moto)
    small_stack(moto, "Backups-solo", tags=[("efs-backup:environment", "solo")], outputs=EFS_BACKUP_OUTPUTS)
    small_stack(moto, "EfsBackup-twin", outputs=EFS_BACKUP_OUTPUTS)  # untagged, by its default name
    small_stack(moto, "Twin-copy", tags=[("efs-backup:environment", "twin"), ("efs-backup:backup-id", "b2")],
                outputs=EFS_BACKUP_OUTPUTS)
    small_stack(moto, "EfsBackup-unrelated")  # no efs-backup outputs, no tag: not an efs-backup stack
    # Found by its tag under a name of its own (then read: a topic is no backup state machine).
    code, _, err, _ = run(installed, "--env", "solo", "--region", OTHER_REGION, "describe", env=env)
    assert code == 5 and "Backups-solo: its backup state machine sets no retention for any interval" in err, err
    # Two stacks of one environment: the CLI does not pick one.
    code, out, err, _ = run(installed, "--env", "twin", "--region", OTHER_REGION, "--json", "describe", env=env)
    assert code == 5, err
    assert (f"environment 'twin' matches 2 stacks in {OTHER_REGION}: EfsBackup-twin (environment twin, backup-id "
            "BackupId-of-EfsBackup-twin), Twin-copy (environment twin, backup-id b2); choose one with --stack NAME"
            in err), err
    assert json.loads(out)["stacks"] == ["EfsBackup-twin", "Twin-copy"]
    code, _, err, _ = run(installed, "--env", "twin", "--stack", "Twin-copy", "--region", OTHER_REGION, "describe",
                          env=env)
    assert code == 5 and "Twin-copy: its backup state machine sets no retention" in err, err
    # None: the error names what there is.
    code, out, err, _ = run(installed, "--env", "staging", "--region", OTHER_REGION, "--json", "status", env=env)
    assert code == 5 and json.loads(out)["exit_code"] == 5
    assert (f"unknown environment 'staging': no stack in {OTHER_REGION} is tagged efs-backup:environment=staging "
            "or is an efs-backup stack named EfsBackup-staging" in err), err
    assert (f"efs-backup stacks in {OTHER_REGION}: Backups-solo (environment solo, backup-id BackupId-of-Backups-solo)"
            ", EfsBackup-twin (environment twin, " in err) and "unrelated" not in err, err
    code, _, err, _ = run(installed, "--stack", "EfsBackup-nowhere", "status", env=env)
    assert code == 5 and f"stack EfsBackup-nowhere is not deployed in {REGION}" in err
    code, _, err, _ = run(installed, "status", env=env)
    assert code == 5 and "no environment: pass --env NAME or set EFS_BACKUP_ENV, or name the stack with --stack" \
        in err
