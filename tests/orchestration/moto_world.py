"""moto as the local AWS for the end-to-end tests: a moto server, the synthesized stack deployed into its
CloudFormation, the state machine re-created in moto's executing backend, and a worker-fleet simulator.

What stands in for AWS, and how (see ../shared/NOTES.md for the moto facts this relies on):
* ``moto_server`` runs in a subprocess (account ``MOTO_ACCOUNT_ID``); Step Functions execution is switched on through
  ``/moto-api/config``. The interpreter calls ec2/sfn/dynamodb/sns of that same server.
* The VPC, subnet and security groups the stack imports by id are created in moto first and given to synth as
  ``-c`` overrides (moto cannot create EC2 resources with chosen ids).
* CloudFormation: assets are uploaded to the bootstrap bucket named in ``<Stack>.assets.json``; the test answers the
  custom resources (BucketDeployment) and does the BucketDeployment's job itself: it copies the scripts asset to
  ``scripts/<asset-hash>/`` in the script bucket, which is where the user data fetches from.
* The worker simulator plays EC2: for every instance the execution launches it decodes the user data (moto
  base64-encodes it twice) and runs it with bash: the real bootstrap fetches the real scripts from moto S3 and runs
  the real worker.sh, which mounts two local directories through the seam ``EFS_BACKUP_LOCAL_MOUNTS`` (bind mounts:
  root needed) and runs the real engine. ``aws`` on the workers' PATH is aws_cli_shim.py (boto3 against moto), each
  call a process forked from a server that imported it once (aws_cli_server.py).
  When a worker exits the simulator terminates its instance (shutdown behaviour terminate); when the state machine
  terminates an instance, the simulator stops its process (SIGTERM, as a shutdown would).
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import boto3
import requests

from aws_cli_server import ShimServer, stop_server
from orchestration_helpers import definition_of

ACCOUNT = "111111111111"
REGION = "us-east-1"
FAULTS_SERVER = Path(__file__).resolve().parent / "moto_faults.py"


class MotoServer:
    """``faults``: a JSON file of EC2 launch faults to inject (see moto_faults.py), or None for plain moto."""

    def __init__(self, workdir: Path, faults: Optional[Path] = None) -> None:
        # The listening socket is bound here and handed to the server, never closed in between: a port probed free
        # and then released can be taken by another xdist worker's server before this one binds it, and the
        # readiness check below would then talk to that other server (CI saw two worlds share one moto).
        # Werkzeug serves a socket it is given when it runs "from the reloader": WERKZEUG_RUN_MAIN and
        # WERKZEUG_SERVER_FD (werkzeug.serving.run_simple).
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.url = f"http://localhost:{self.port}"
        self.log = open(workdir / "moto.log", "w")
        env = dict(os.environ, MOTO_ACCOUNT_ID=ACCOUNT, MOTO_PORT=str(self.port), WERKZEUG_RUN_MAIN="true",
                   WERKZEUG_SERVER_FD=str(listener.fileno()))
        server = ["-m", "moto.server"]
        if faults is not None:
            env["MOTO_FAULTS_FILE"] = str(faults)
            server = [str(FAULTS_SERVER)]
        with listener:
            self.proc = subprocess.Popen([sys.executable, *server, "-H", "127.0.0.1", "-p", str(self.port)], env=env,
                                         pass_fds=(listener.fileno(),), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while True:
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                break
            except requests.RequestException:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("moto server did not start; see moto.log")
                time.sleep(0.2)
        requests.post(f"{self.url}/moto-api/config", json={
            "stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}, timeout=10)
        self.env = {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}

    def client(self, service: str):
        return boto3.client(service, region_name=REGION, endpoint_url=self.url, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    def stop(self) -> None:
        stop_server(self.proc, self.log)


# ------------------------------------------------------------------------------------------------------ deploy


def create_network(moto: MotoServer, zones: int = 1) -> Dict[str, str]:
    ec2 = moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = ",".join(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{index + 1}.0/24",
                          AvailabilityZone=f"{REGION}{'abcdef'[index]}")["Subnet"]["SubnetId"] + f":{REGION}{'abcdef'[index]}"
        for index in range(zones))
    mount_target_sg = ec2.create_security_group(GroupName="prod-mt", Description="prod mt", VpcId=vpc)["GroupId"]
    client_sg = ec2.create_security_group(GroupName="prod-client", Description="prod client", VpcId=vpc)["GroupId"]
    # A second file system restores may write to (restore_target_file_systems), with its mount-target group.
    other_sg = ec2.create_security_group(GroupName="other-mt", Description="other mt", VpcId=vpc)["GroupId"]
    other_fs = moto.client("efs").create_file_system(CreationToken="restore-target")["FileSystemId"]
    return {"vpc_id": vpc, "vpc_cidr": "10.9.0.0/16", "subnets": subnets,
            "source_mount_target_security_group_id": mount_target_sg, "source_client_security_group": client_sg,
            "restore_target_file_systems": f"{other_fs}:{other_sg}",
            # As the example environment: the VPC's own endpoints (S3 gateway via its prefix list, states, logs).
            "worker_https_egress": "10.9.0.0/16,pl-63a5400a"}


def upload_assets(moto: MotoServer, outdir: Path, stack_name: str) -> Dict[str, Path]:
    """Publish the file assets like `cdk deploy` does. Returns asset hash -> source path."""
    manifest = json.loads((outdir / f"{stack_name}.assets.json").read_text())
    s3 = moto.client("s3")
    sources = {}
    for asset_hash, asset in manifest["files"].items():
        source = outdir / asset["source"]["path"]
        sources[asset_hash] = source
        for destination in asset["destinations"].values():
            bucket = destination["bucketName"].replace("${AWS::AccountId}", ACCOUNT).replace("${AWS::Region}", REGION)
            try:
                s3.create_bucket(Bucket=bucket)
            except s3.exceptions.BucketAlreadyOwnedByYou:
                pass
            if source.is_dir():
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w") as archive:
                    for path in sorted(source.rglob("*")):
                        if path.is_file():
                            archive.write(path, path.relative_to(source).as_posix())
                body = buffer.getvalue()
            else:
                body = source.read_bytes()
            s3.put_object(Bucket=bucket, Key=destination["objectKey"], Body=body)
    return sources


def deploy(moto: MotoServer, template: Dict[str, Any], stack_name: str, timeout: float = 90) -> Dict[str, Dict]:
    moto.client("ssm").put_parameter(Name="/cdk-bootstrap/hnb659fds/version", Value="30", Type="String")
    # moto's CloudFormation fails (HTTP 500, KeyError 'TagKey') on a KMS key with Tags in CloudFormation's Key/Value
    # form, which every stack tag puts on the alarm topic's key: deploy the keys untagged (AWS takes them as they are).
    template = json.loads(json.dumps(template))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::KMS::Key":
            resource["Properties"].pop("Tags", None)
    cfn = moto.client("cloudformation")
    stack_id = cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(template),
                                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])["StackId"]
    answered = set()
    deadline = time.time() + timeout
    while True:
        status = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]["StackStatus"]
        if status == "CREATE_COMPLETE":
            break
        if status != "CREATE_IN_PROGRESS" or time.time() > deadline:
            events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"][:10]
            raise RuntimeError(f"stack {status}: {[(e['LogicalResourceId'], e.get('ResourceStatusReason')) for e in events]}")
        # Custom resources (BucketDeployment): their Lambda handlers need docker; answer them as succeeded.
        for logical_id, resource in template["Resources"].items():
            if resource["Type"].startswith("Custom::") and logical_id not in answered:
                response = requests.post(
                    f"{moto.url}/cloudformation_{REGION}/cfnresponse?stack={stack_id}",
                    data=json.dumps({"Status": "SUCCESS", "StackId": stack_id, "LogicalResourceId": logical_id,
                                     "PhysicalResourceId": logical_id, "Data": {}}),
                    timeout=10)
                if response.status_code == 200:
                    answered.add(logical_id)
        time.sleep(0.3)
    resources = {}
    for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_id):
        for summary in page["StackResourceSummaries"]:
            resources[summary["LogicalResourceId"]] = summary
    return resources


def resolver(moto: MotoServer, resources: Dict[str, Dict]) -> Callable[[Dict[str, Any]], str]:
    ec2 = moto.client("ec2")

    def resolve(value: Dict[str, Any]) -> str:
        (name, argument), = value.items()
        if name == "Ref":
            pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                      "AWS::URLSuffix": "amazonaws.com"}
            if argument in pseudo:
                return pseudo[argument]
            return resources[argument]["PhysicalResourceId"]
        if name == "Fn::GetAtt":
            logical_id, attribute = argument
            physical = resources[logical_id]["PhysicalResourceId"]
            if attribute == "GroupId":
                return physical
            if attribute == "LatestVersionNumber":
                template = ec2.describe_launch_templates(LaunchTemplateIds=[physical])["LaunchTemplates"][0]
                return str(template["LatestVersionNumber"])
            if attribute == "Arn" and physical.startswith("arn:"):
                return physical
        raise ValueError(f"cannot resolve {value!r}")

    return resolve


# ------------------------------------------------------------------------------------------------- simulator


def decode_user_data(encoded: str) -> str:
    """moto stores the UserData it was given base64-encoded once more; AWS would not. Decode until a script."""
    text = encoded
    for _ in range(3):
        if text.startswith("#!"):
            return text
        text = base64.b64decode(text).decode()
    raise ValueError("user data is not a script")


@dataclass
class SimulatedInstance:
    instance_id: str
    role: str
    execution: str
    home: Path
    proc: Optional[subprocess.Popen] = None
    ignored: bool = False


_GONE = ("shutting-down", "terminated")


@dataclass
class WorkerFleet:
    """Plays EC2 for the worker instances of the deployed launch template."""

    moto: MotoServer
    workdir: Path
    source: Path
    backup: Path
    other: Path  # stands for every restore target other than the production file system
    # (instance) -> False to leave an instance without a worker process (it never reports).
    should_run: Callable[[SimulatedInstance], bool] = lambda instance: True
    # (instance) -> a command prefix for its bootstrap, e.g. setpriv dropping capabilities (root squashing).
    command_prefix: Callable[[SimulatedInstance], List[str]] = lambda instance: []
    instances: Dict[str, SimulatedInstance] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bin = self.workdir / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.shim_server = ShimServer(self.workdir / "aws-shim-server.log")
        wrapper = self.bin / "aws"
        wrapper.write_text(f"#!/bin/sh\n{self.shim_server.aws_command}\n")
        wrapper.chmod(0o755)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        ec2 = self.moto.client("ec2")
        while not self._stop.is_set():
            try:
                self._tick(ec2)
            except Exception as error:  # keep playing; the test sees the consequences
                print(f"worker fleet: {error!r}", file=sys.stderr)
            self._stop.wait(0.3)

    def _tick(self, ec2) -> None:
        # Only the instances a tick can act on: those not yet terminated (new ones start a worker), and the known ones
        # whose worker still runs (stopped once the workflow terminates them). Terminated instances pile up over a
        # module's scenarios, and describing them all every 0.3 s was most of moto's CPU (about 1 ms each a call).
        tagged = {"Name": "tag-key", "Values": ["efs-backup:execution"]}
        live = {"Name": "instance-state-name", "Values": ["pending", "running", "shutting-down", "stopping", "stopped"]}
        with self._lock:
            working = [i.instance_id for i in self.instances.values() if i.proc is not None and i.proc.poll() is None]
        reservations = ec2.describe_instances(Filters=[tagged, live])["Reservations"]
        if working:
            reservations += ec2.describe_instances(InstanceIds=working)["Reservations"]
        states = {}
        for reservation in reservations:
            for described in reservation["Instances"]:
                instance_id, state = described["InstanceId"], described["State"]["Name"]
                states[instance_id] = state
                tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
                with self._lock:
                    known = self.instances.get(instance_id)
                if known is None and state in ("pending", "running"):
                    self._start(ec2, instance_id, tags)
                elif known is not None and state in _GONE and known.proc is not None \
                        and known.proc.poll() is None:
                    os.killpg(known.proc.pid, signal.SIGTERM)
        with self._lock:
            finished = [i for i in self.instances.values() if i.proc is not None and i.proc.poll() is not None
                        and not getattr(i, "_reaped", False)]
        for instance in finished:
            # Shutdown behaviour terminate. Reaped only once moto has it terminated: wait_idle returns when every
            # instance is reaped, and a test that then found an instance still "running" had seen this tick between
            # the two steps (a CI failure). moto refuses to terminate an instance twice (the workflow may have: then
            # it was described as gone, or not described at all, being neither live nor working, above).
            if states.get(instance.instance_id, "terminated") not in _GONE:
                ec2.terminate_instances(InstanceIds=[instance.instance_id])
            instance._reaped = True  # type: ignore[attr-defined]

    def _start(self, ec2, instance_id: str, tags: Dict[str, str]) -> None:
        attribute = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        user_data = decode_user_data(attribute["UserData"]["Value"])
        home = self.workdir / "instances" / instance_id
        home.mkdir(parents=True)
        (home / "user-data").write_text(user_data)
        instance = SimulatedInstance(instance_id, tags.get("efs-backup:role", "?"),
                                     tags.get("efs-backup:execution", "?"), home)
        with self._lock:
            self.instances[instance_id] = instance
        if not self.should_run(instance):
            instance.ignored = True
            return
        env = dict(os.environ, **self.moto.env, EFS_BACKUP_HOME=str(home),
                   EFS_BACKUP_LOCAL_MOUNTS=f"{self.source}:{self.backup}:{self.other}",
                   AWS_SHIM_CALL_LOG=str(home / "aws-calls.jsonl"),
                   PATH=f"{self.bin}:{os.environ['PATH']}")
        with open(home / "console.log", "w") as console:
            instance.proc = subprocess.Popen([*self.command_prefix(instance), "bash", str(home / "user-data")],
                                             env=env, stdout=console,
                                             stderr=subprocess.STDOUT, start_new_session=True)

    def of_execution(self, execution: str) -> List[SimulatedInstance]:
        with self._lock:
            return [i for i in self.instances.values() if i.execution == execution]

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self._lock:
                busy = [i for i in self.instances.values()
                        if i.proc is not None and (i.proc.poll() is None or not getattr(i, "_reaped", False))]
            if not busy:
                return
            time.sleep(0.2)
        raise TimeoutError(f"workers still running: {[i.instance_id for i in busy]}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            running = [i for i in self.instances.values() if i.proc is not None and i.proc.poll() is None]
        for instance in running:
            os.killpg(instance.proc.pid, signal.SIGTERM)
            try:
                instance.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(instance.proc.pid, signal.SIGKILL)
        self.shim_server.stop()
        # Leftover bind mounts of killed workers (worker.sh unmounts on every normal exit).
        for line in reversed(Path("/proc/mounts").read_text().splitlines()):
            mount_point = line.split()[1]
            if mount_point.startswith(str(self.workdir)):
                subprocess.run(["umount", "-l", mount_point], check=False)


def synth_for_moto(outdir: Path, network: Dict[str, str], **overrides: str):
    from cdk_helpers import synthesize
    from settings.workers import emulated_worker_boot

    # Simulated workers start in well under a second: heartbeat timeouts of seconds are allowed here only.
    with emulated_worker_boot(5):
        return synthesize("example", outdir, **network, **overrides)


def copy_scripts_into_bucket(moto: MotoServer, bucket: str, prefix: str, scripts_dir: Path) -> None:
    """What the BucketDeployment does on a real deploy: the scripts asset, under scripts/<asset-hash>/."""
    s3 = moto.client("s3")
    for path in sorted(scripts_dir.rglob("*")):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=prefix + path.relative_to(scripts_dir).as_posix(), Body=path.read_bytes())


def moto_compatible(definition: Dict[str, Any]) -> Dict[str, Any]:
    """The one rewrite the tests apply to the definition, and why.

    moto's interpreter passes aws-sdk parameters to boto3 as written and returns boto3's response keys as they are
    (its ``_normalise_parameters``/``_normalise_response`` are no-ops), while Step Functions takes and returns the
    PascalCase names (``StateMachineArn``, ``Executions``). EC2's API is PascalCase anyway; only the
    ``aws-sdk:sfn`` task (camelCase API) is affected, so it alone is rewritten to the camelCase names here.
    """
    rewritten = json.loads(json.dumps(definition))
    touched = []

    def camel(key: str) -> str:
        return key[0].lower() + key[1:]

    def visit(states: Dict[str, Any]) -> None:
        for name, state in states.items():
            if state.get("Resource", "").startswith("arn:aws:states:::aws-sdk:sfn:"):
                state["Parameters"] = {camel(k): v for k, v in state["Parameters"].items()}
                state["ResultSelector"] = {k: v.replace("$.Executions", "$.executions")
                                           for k, v in state.get("ResultSelector", {}).items()}
                touched.append(name)
            if "ItemProcessor" in state:
                visit(state["ItemProcessor"]["States"])

    visit(rewritten["States"])
    assert touched == ["FindRunningExecutions"], touched
    return rewritten


def recreate_state_machine(moto: MotoServer, template: Dict[str, Any], resources: Dict[str, Dict],
                           name: str, role_arn: str, kind: str = "backup"):
    definition = moto_compatible(definition_of(template, resolver(moto, resources), kind=kind))
    sfn = moto.client("stepfunctions")
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role_arn,
                                    type="STANDARD")["stateMachineArn"], definition


def can_bind_mount(tmp: Path) -> bool:
    """Whether this process may bind-mount (root and mount(2)): the mount seam needs it."""
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    if os.geteuid() != 0:
        return False
    ok = subprocess.run(["mount", "--bind", str(tmp / "a"), str(tmp / "b")], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", str(tmp / "b")], check=False)
    return ok


class World:
    """A deployed stack in moto with both state machines executable, a notification queue, two tmpfs file systems
    standing for the production and the backup EFS, and the worker fleet playing EC2 (see ``deployed_world``)."""

    def physical(self, construct) -> str:
        return self.resources[self.synth.stack.get_logical_id(construct.node.default_child)]["PhysicalResourceId"]


@contextmanager
def deployed_world(workdir: Path, *, faults: Optional[Path] = None, zones: int = 1,
                   **synth_overrides: str) -> Iterator[World]:
    """Everything the end-to-end tests share: synth (with ``synth_overrides``), deploy into a fresh moto server,
    the scripts in the bucket, the backup and restore state machines re-created in moto's executing backend, an SQS
    queue subscribed to the notification topic, ``production``, ``backup`` and ``other`` (a restore target) tmpfs
    file systems (empty) and the fleet. ``zones`` subnets (one per zone); ``faults``: see MotoServer. Needs root
    (tmpfs and bind mounts)."""
    moto = MotoServer(workdir, faults)
    fleet = None
    filesystems: List[Path] = []
    try:
        network = create_network(moto, zones)
        synth = synth_for_moto(workdir / "cdk", network, **synth_overrides)
        stack = synth.stack
        sources = upload_assets(moto, workdir / "cdk", stack.stack_name)
        w = World()
        w.moto, w.synth, w.workdir = moto, synth, workdir
        w.resources = deploy(moto, synth.template_json, stack.stack_name)
        bucket = w.physical(stack.scripts.bucket)
        copy_scripts_into_bucket(moto, bucket, stack.scripts.script_key_prefix, sources[stack.scripts.asset_hash])
        w.arn, w.definition = recreate_state_machine(
            moto, synth.template_json, w.resources, stack.workflow.state_machine_name,
            f"arn:aws:iam::{ACCOUNT}:role/{w.physical(stack.workflow.role)}")
        w.restore_arn, w.restore_definition = recreate_state_machine(
            moto, synth.template_json, w.resources, stack.restore_workflow.state_machine_name,
            f"arn:aws:iam::{ACCOUNT}:role/{w.physical(stack.restore_workflow.role)}", kind="restore")
        w.sqs, sns = moto.client("sqs"), moto.client("sns")
        w.queue_url = w.sqs.create_queue(QueueName="notifications")["QueueUrl"]
        queue_arn = w.sqs.get_queue_attributes(QueueUrl=w.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"]
        sns.subscribe(TopicArn=w.physical(stack.notifications.topic), Protocol="sqs", Endpoint=queue_arn)
        # Two file systems of their own, like the two EFS they stand for: the engine's --require-mountpoint check
        # stays on (a bind mount of a directory of the same file system is not a mount point to it).
        w.source, w.backup, w.other = workdir / "production", workdir / "backup", workdir / "other"
        w.other_file_system_id = synth.config.restore_targets[0].file_system_id
        for directory in (w.source, w.backup, w.other):
            directory.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(directory)], check=True)
            filesystems.append(directory)
        fleet = w.fleet = WorkerFleet(moto, workdir, w.source, w.backup, w.other)
        w.id_dir = w.backup / synth.config.backup_id
        w.table = w.physical(stack.workflow.table)
        w.log_group = w.physical(stack.launch_template.log_group)
        w.sfn, w.ec2, w.ddb = moto.client("stepfunctions"), moto.client("ec2"), moto.client("dynamodb")
        yield w
    finally:
        if fleet is not None:
            fleet.stop()
        for directory in reversed(filesystems):
            subprocess.run(["umount", "-l", str(directory)], check=False)
        moto.stop()
