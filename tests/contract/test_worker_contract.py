"""worker.sh and the state machines against efs_backup_contract: every value they share is defined there once.

- exit codes -> error names: worker.sh's engine_error_name (run in bash, for every exit code the contract names and
  a spread of others) equals efs_backup_contract.exits.error_name; every error name worker.sh reports is one of
  task.WORKER_ERROR_NAMES; the state machines route on the contract's ENGINE_WORK_FAILED;
- roles and task fields: the synthesized state machines write exactly task_fields(role) for exactly ROLES, inside
  the envelope whose token field is TASK_TOKEN; worker.sh dispatches exactly ROLES;
- the restore request: the restore state machine checks exactly RESTORE_REQUEST_FIELDS (the field list the workers
  refuse anything else by);
- worker.sh keeps no copy of a contract list (intervals, roles outside its dispatch, task fields);
- the user data (in the state machines' launch states) writes the pointer worker.sh reads and shares worker.sh's
  install root and environment.

The templates are read from the committed snapshots (tests/cdk/__snapshots__), which tests/cdk/test_cdk_templates.py
proves equal to what the app synthesizes: no synthesis here, so this stays fast.
"""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from efs_backup_contract.exits import ERROR_NAMES, EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, \
    EXIT_WARNINGS, error_name
from efs_backup_contract.intervals import INTERVALS
from efs_backup_contract.task import (BACKUP_TASK_FIELDS, COMMON_TASK_FIELDS, ENGINE_WORK_FAILED, INSTALL_DIR,
                                      POINTER_FIELDS, RESTORE_REQUEST_FIELDS, RESTORE_ROLES, ROLES, TASK_TOKEN,
                                      WORKER_ERROR_NAMES, WORKER_FAILED, task_fields)
from efs_backup_worker.task import read_pointer

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_SH = REPO_ROOT / "assets" / "scripts" / "worker.sh"
SNAPSHOTS = sorted((REPO_ROOT / "tests" / "cdk" / "__snapshots__" / "test_cdk_templates").glob("*.json"))


def worker_code() -> str:
    """worker.sh without its comment lines (the header documents the contract; the code must not copy it)."""
    return "\n".join(line for line in WORKER_SH.read_text().splitlines() if not line.lstrip().startswith("#"))


def in_worker_sh(script: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f'source "{WORKER_SH}"; {script}'], capture_output=True, text=True,
                          env=dict(os.environ, **env))


# ----------------------------------------------------------------------------------------------- error names

EXIT_CODES = sorted({EXIT_OK, EXIT_FAILED, EXIT_WARNINGS, EXIT_REFUSED, EXIT_BUSY, EXIT_USAGE, 5, 70, 126, 127,
                     137, 143, 255})


def test_worker_sh_names_every_exit_code_as_the_contract_does():
    codes = " ".join(str(code) for code in EXIT_CODES)
    proc = in_worker_sh(f'for code in {codes}; do engine_error_name "$code"; done')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [error_name(code) for code in EXIT_CODES]
    assert set(ERROR_NAMES.values()) <= set(proc.stdout.splitlines())


def test_worker_sh_still_names_an_exit_code_when_python_cannot_run():
    proc = in_worker_sh('HELPER=/nonexistent; engine_error_name 3')
    assert proc.stdout == "EngineExit3\n"


def test_every_error_name_worker_sh_reports_is_in_the_contract():
    errors = re.findall(r"\breport_failure (\S+)", worker_code())
    literal = {error for error in errors if re.fullmatch(r"[A-Za-z]+", error)}
    assert literal == {WORKER_FAILED, ENGINE_WORK_FAILED, "EngineRefused"}
    assert literal <= set(WORKER_ERROR_NAMES)
    # every other one comes from the contract, through engine_error_name
    assert {error for error in errors if error not in literal} == {'"$(engine_error_name'}


# ------------------------------------------------------------------------------------------ state machines


def definitions(snapshot: Path):
    """name suffix (backup|restore) -> the state machine's ASL, tokens as placeholders."""
    template = json.loads(snapshot.read_text())
    found = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        kind = resource["Properties"]["StateMachineName"].rsplit("-", 1)[-1]
        definition = resource["Properties"]["DefinitionString"]
        if isinstance(definition, dict):
            separator, parts = definition["Fn::Join"]
            definition = separator.join(p if isinstance(p, str) else "TOKEN" for p in parts)
        found[kind] = definition
    return found


def task_objects(node, found):
    """Every task object written for a worker: a "task" dict with a role (in Pass states and the Map selector)."""
    if isinstance(node, dict):
        if isinstance(node.get("task"), dict):
            found.append(node["task"])
        for value in node.values():
            task_objects(value, found)
    elif isinstance(node, list):
        for value in node:
            task_objects(value, found)
    return found


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda p: p.stem)
def test_the_state_machines_write_exactly_the_contracts_task_fields_for_exactly_its_roles(snapshot):
    machines = definitions(snapshot)
    roles = set()
    for kind in ("backup", "restore"):
        definition = json.loads(machines[kind])
        tasks = task_objects(definition, [])
        assert tasks, kind
        for task in tasks:
            role = task["role"]
            assert role in (RESTORE_ROLES if kind == "restore" else ROLES[:3]), (kind, role)
            assert sorted(name[:-2] if name.endswith(".$") else name for name in task) == sorted(task_fields(role))
            roles.add(role)
        envelope = definition["States"]["PlanWorkers"]["Parameters"]["envelope"]
        assert envelope["head"] == '{"%s": "' % TASK_TOKEN and envelope["middle"] == '", "task": '
        # a task object is the envelope around one task: what efs_backup_worker.task parses
        assert json.loads(envelope["head"] + "TOKEN" + envelope["middle"] + '{"role": "work"}' + envelope["tail"]) == {
            TASK_TOKEN: "TOKEN", "task": {"role": "work"}}
    assert roles == set(ROLES)


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda p: p.stem)
def test_the_restore_state_machine_checks_exactly_the_contracts_request_fields(snapshot):
    text = definitions(snapshot)["restore"]
    checked = set(re.findall(r"\$\.request\.([A-Za-z_]+)", text))
    # "workers" and "streams" are the state machine's own: checked on the input as $.workers and $.streams (they
    # become worker_count and streams)
    assert checked == set(RESTORE_REQUEST_FIELDS) - {"workers", "streams"}
    assert '"Variable":"$.workers"' in text and '"Variable":"$.streams"' in text


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda p: p.stem)
def test_the_state_machines_route_failed_parts_on_the_contracts_error_name(snapshot):
    for kind, text in definitions(snapshot).items():
        if kind in ("backup", "restore"):
            assert re.findall(r'"Variable":"\$\.error\.Error","StringEquals":"([A-Za-z]+)"', text) == [
                ENGINE_WORK_FAILED], kind


# ----------------------------------------------------------------------------------------------- worker.sh


def test_worker_sh_dispatches_exactly_the_contracts_roles():
    main = worker_code().split("\nmain() {", 1)[1]
    dispatch = main.split('case "$TASK_ROLE" in', 1)[1].split("esac", 1)[0]
    assert re.findall(r"^\s*([a-z-]+)\) run_", dispatch, re.M) == list(ROLES)


def test_worker_sh_keeps_no_copy_of_a_contract_list():
    code = worker_code()
    for interval in INTERVALS:
        assert not re.search(r"\b%s\b" % interval, code), "worker.sh names the interval %s" % interval
    for field in COMMON_TASK_FIELDS + BACKUP_TASK_FIELDS:
        if field in ("role", "region", "interval", "retain", "request"):
            continue  # common words; the list itself is what must not be here
        assert not re.search(r"(?<![A-Za-z_])%s(?![A-Za-z_])" % field, code), "worker.sh lists %s" % field


def test_task_variables_never_collide_with_worker_sh_s_own():
    """read_task_file sets TASK_<FIELD>: no field of the contract may overwrite a variable worker.sh sets itself."""
    own = set(re.findall(r"^\s*(?:local\s+)?(TASK_[A-Z_]+)=", worker_code(), re.M))
    fields = {"TASK_" + name.upper() for name in set(COMMON_TASK_FIELDS + BACKUP_TASK_FIELDS) | {TASK_TOKEN}}
    assert own & fields == {"TASK_REGION"}  # fetch_task's default: the pointer's region until the task is read
    assert {"TASK_WAIT_SECONDS", "TASK_POLL_SECONDS"} <= own


# ------------------------------------------------------------------------------------------------ user data


def bootstrap(snapshot: Path):
    """The user data's bootstrap pieces (head + <task object key> + tail) the state machines launch workers with."""
    pieces = [json.loads(text)["States"]["PlanWorkers"]["Parameters"]["bootstrap"]
              for text in definitions(snapshot).values() if '"PlanWorkers"' in text]
    assert len(pieces) == 2 and pieces[0] == pieces[1]
    return pieces[0]["head"], pieces[0]["tail"]


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda p: p.stem)
def test_the_user_data_writes_the_pointer_worker_sh_reads(snapshot):
    head, tail = bootstrap(snapshot)
    start = head.index("<<'EFS_BACKUP_TASK'\n") + len("<<'EFS_BACKUP_TASK'\n")
    text = head[start:] + "tasks/backup/run-1/Worker-0.json" + tail[:tail.index("\nEFS_BACKUP_TASK\n")]
    text = text.replace('"TOKEN"', '"%s"')
    pointer = json.loads(text % ("eu-west-1", "scripts-bucket-1"))
    assert tuple(pointer) == POINTER_FIELDS
    assert read_pointer(json.dumps(pointer)) == ("eu-west-1", "scripts-bucket-1", "tasks/backup/run-1/Worker-0.json")


@pytest.mark.parametrize("snapshot", SNAPSHOTS, ids=lambda p: p.stem)
def test_the_user_data_and_worker_sh_agree_on_the_install_root_and_the_environment(snapshot):
    head, tail = bootstrap(snapshot)
    default = 'EFS_BACKUP_HOME="${EFS_BACKUP_HOME:-%s}"' % INSTALL_DIR
    # the bootstrap does not export EFS_BACKUP_HOME: worker.sh finds the same root only through the same default
    assert default in head and default in worker_code()
    # chmod +x worker.sh efs-backup-engine; exec worker.sh
    assert re.findall(r'"\$EFS_BACKUP_HOME/scripts/([^"]+)"', head + tail) == [
        "worker.sh", "efs-backup-engine", "worker.sh"]
    exported = set(re.findall(r"export (EFS_BACKUP_[A-Z_]+)=", head))
    read = set(re.findall(r"\$\{(EFS_BACKUP_[A-Z_]+)", worker_code()))
    assert exported and exported <= read, exported - read
    # the helpers are run with python3, so they need no execute bit (S3 keeps none; the bootstrap sets only these)
    assert 'python3 "$HELPER"' in worker_code() and 'python3 "$ENGINE"' in worker_code()
