"""From ``--env`` / ``--stack`` to a deployed efs-backup stack, and from the stack to everything the CLI uses.

The CLI needs no checkout of the CDK app: the stack is found

- by name: ``--stack NAME`` (or ``-c stack_name=NAME``), in ``--region`` or the AWS configuration's region;
- by environment: ``--env NAME`` (or ``EFS_BACKUP_ENV``). When a ``cdk.json`` is at hand (``--cdk-json PATH``,
  ``EFS_BACKUP_CDK_JSON``, or the working directory and its parents), it is read as plain JSON for that
  environment's ``stack_name`` (default ``EfsBackup-<env>``) and ``region``; otherwise the stacks of the region are
  listed and the one of that environment is taken (none or several: an error naming them): tagged
  ``efs-backup:environment=<env>`` (the stack carries it itself: stacks/efs_backup_stack.py), or, for a stack
  deployed before it carried its tags, one with the efs-backup outputs named ``EfsBackup-<env>``.

Every resource comes from the stack's outputs (``efs_backup_contract.deployment``), the settings the CLI acts on
(retention, schedules, stale thresholds, default workers, writable file systems) from its deployed template
(``deployed.py``). AWS calls: ``cloudformation:DescribeStacks`` and ``cloudformation:GetTemplate``
(https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html,
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_GetTemplate.html).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from efs_backup_contract.deployment import (CLI_OUTPUTS, DEFAULT_STACK_NAME, OUTPUT_BACKUP_ID,
                                            OUTPUT_RUN_HISTORY_TABLE, OUTPUT_STATE_MACHINE, TAG_BACKUP_ID,
                                            TAG_ENVIRONMENT)

from efs_backup_cli.deployed import (LOCATION_KEYS, OVERRIDE_KEYS, DeployedSettings, apply_overrides,
                                     parse_overrides, read_settings, template_body)
from efs_backup_cli.errors import EXIT_ENVIRONMENT, CliError
from efs_backup_cli.limits import check_context_keys

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the repository root when run from a checkout
RESERVED_CONTEXT_KEYS = ("env", "environments")
CREDENTIAL_ERRORS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                     "InvalidSignatureException", "SignatureDoesNotMatch", "AccessDeniedException", "AccessDenied",
                     "RequestExpired", "AuthFailure"}
GONE_STATUSES = ("DELETE_COMPLETE", "ROLLBACK_COMPLETE")


# ---------------------------------------------------------------------------------------------- cdk.json


def find_cdk_json(explicit: Optional[str] = None) -> Optional[Path]:
    """--cdk-json / EFS_BACKUP_CDK_JSON (must exist), else a cdk.json in the working directory or above, else the
    checkout's the CLI runs from; None when there is none (the CLI then finds stacks by tag)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise CliError(f"cdk.json not found at {path}", EXIT_ENVIRONMENT)
        return path
    for directory in (Path.cwd(), *Path.cwd().parents):
        if (directory / "cdk.json").is_file():
            return directory / "cdk.json"
    if (PACKAGE_ROOT / "cdk.json").is_file() and (PACKAGE_ROOT / "efs_backup_cli").is_dir():
        return PACKAGE_ROOT / "cdk.json"
    return None


@dataclass(frozen=True)
class CdkJson:
    """The environments of a cdk.json, read as plain JSON: where each one's stack is, nothing more."""

    path: Path
    context: Mapping[str, Any]

    @classmethod
    def read(cls, path: Path) -> "CdkJson":
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise CliError(f"cannot read {path}: {error}", EXIT_ENVIRONMENT) from None
        context = document.get("context") if isinstance(document, dict) else None
        return cls(path, context if isinstance(context, dict) else {})

    @property
    def environments(self) -> List[str]:
        environments = self.context.get("environments")
        return sorted(environments) if isinstance(environments, dict) else []

    def value(self, env_name: str, key: str) -> Optional[str]:
        """A top-level context value overrides the environment's, as in the CDK app."""
        top = self.context.get(key)
        if isinstance(top, str) and top:
            return top
        settings = (self.context.get("environments") or {}).get(env_name) or {}
        value = settings.get(key) if isinstance(settings, dict) else None
        return value if isinstance(value, str) and value else None

    def stack_name(self, env_name: str) -> str:
        return self.value(env_name, "stack_name") or DEFAULT_STACK_NAME.format(environment=env_name)


# ---------------------------------------------------------------------------------------------- AWS errors


def client_error_code(error: Exception) -> str:
    return getattr(error, "response", {}).get("Error", {}).get("Code", "")


def translate_aws_error(error: Exception, what: str) -> CliError:
    """Credential problems and other AWS errors as one line with the environment exit code."""
    from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError,
                                     NoRegionError, PartialCredentialsError, ProfileNotFound, TokenRetrievalError)

    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return CliError("no AWS credentials found (set AWS_PROFILE / --profile, or AWS_ACCESS_KEY_ID and "
                        "AWS_SECRET_ACCESS_KEY, or log in with `aws sso login`)", EXIT_ENVIRONMENT)
    if isinstance(error, TokenRetrievalError):
        return CliError(f"AWS credentials expired ({error}); log in again (e.g. `aws sso login`)", EXIT_ENVIRONMENT)
    if isinstance(error, ProfileNotFound):
        return CliError(str(error), EXIT_ENVIRONMENT)
    if isinstance(error, NoRegionError):
        return CliError("no AWS region: pass --region, or set AWS_REGION or a region in the AWS profile",
                        EXIT_ENVIRONMENT)
    if isinstance(error, EndpointConnectionError):
        return CliError(f"cannot reach AWS while {what}: {error}", EXIT_ENVIRONMENT)
    if isinstance(error, ClientError):
        code = client_error_code(error)
        message = error.response.get("Error", {}).get("Message", str(error))
        if code in CREDENTIAL_ERRORS:
            return CliError(f"AWS refused the credentials while {what} ({code}: {message}); they may be expired "
                            "or lack permission", EXIT_ENVIRONMENT)
        return CliError(f"AWS error while {what}: {code}: {message}", EXIT_ENVIRONMENT)
    return CliError(f"error while {what}: {error}", EXIT_ENVIRONMENT)


def _aws(call, what: str, *args, **kwargs):
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call(*args, **kwargs)
    except (BotoCoreError, ClientError) as error:
        raise translate_aws_error(error, what) from None


# ---------------------------------------------------------------------------------------------- the deployment


def _tags(stack: Mapping[str, Any]) -> Dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in stack.get("Tags") or []}


def _outputs(stack: Mapping[str, Any]) -> Dict[str, str]:
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}


def environment_of(stack: Mapping[str, Any]) -> Optional[str]:
    """The environment of an efs-backup stack: its tag efs-backup:environment; for a stack deployed without stack
    tags, recognised by its outputs, the environment its default name (EfsBackup-<env>) says; else None."""
    tagged = _tags(stack).get(TAG_ENVIRONMENT)
    if tagged:
        return tagged
    if not {OUTPUT_STATE_MACHINE, OUTPUT_RUN_HISTORY_TABLE, OUTPUT_BACKUP_ID} <= set(_outputs(stack)):
        return None
    prefix, _, suffix = DEFAULT_STACK_NAME.partition("{environment}")
    name = stack.get("StackName", "")
    if name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix) + len(suffix):
        return name[len(prefix):len(name) - len(suffix)]
    return "?"  # an efs-backup stack under another name: found by --stack only


@dataclass
class Deployment:
    """One deployed stack: a session in its region, its outputs and the settings read from it."""

    stack_name: str
    region: str
    session: Any
    environment: Optional[str] = None
    outputs: Dict[str, str] = field(default_factory=dict)
    stack_status: str = "?"
    settings: Optional[DeployedSettings] = None
    _clients: Dict[str, Any] = field(default_factory=dict)

    @property
    def backup_id(self) -> str:
        return self.outputs.get(OUTPUT_BACKUP_ID) or "?"

    @property
    def redeploy(self) -> str:
        """How the operator fixes a stack: the CDK app's deploy command for this environment."""
        if self.environment:
            return f"`npx cdk deploy -c env={self.environment}`"
        return "`npx cdk deploy -c env=<environment>` from the efs-backup CDK app"

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def output(self, key: str) -> str:
        """A stack output the CLI needs; missing, an error that says which and what the stack has."""
        value = self.outputs.get(key)
        if value:
            return value
        if not self.outputs:
            raise CliError(f"stack {self.stack_name} in {self.region} ({self.stack_status}) has no outputs at all, "
                           f"so the CLI cannot find {key} (nor {', '.join(k for k in CLI_OUTPUTS if k != key)}): "
                           f"it is not an efs-backup stack, or its deployment did not record them; redeploy with "
                           f"{self.redeploy}", EXIT_ENVIRONMENT, {"stack": self.stack_name, "missing_output": key})
        raise CliError(f"stack {self.stack_name} in {self.region} has no output {key} (it has "
                       f"{', '.join(sorted(self.outputs))}): it was deployed from a version without {key}; redeploy "
                       f"with {self.redeploy}", EXIT_ENVIRONMENT, {"stack": self.stack_name, "missing_output": key})

    def retain(self, interval: str) -> int:
        return self.settings.retain.get(interval, 0)

    def used_intervals(self) -> List[str]:
        return self.settings.used_intervals()

    def to_json(self) -> Dict[str, Any]:
        s = self.settings
        return {"stack": self.stack_name, "region": self.region, "environment": self.environment,
                "status": self.stack_status, "backup_id": self.backup_id, "outputs": dict(sorted(self.outputs.items())),
                "retain": dict(s.retain), "schedules": dict(s.schedules), "stale_after_seconds": dict(s.stale_after),
                "stale_multiple": s.stale_multiple, "default_workers": s.default_workers,
                "default_streams": s.default_streams,
                "source_file_system_id": s.source_file_system_id, "restore_targets": s.restore_targets}


def _session(profile: Optional[str], region: Optional[str]):
    import boto3
    from botocore.exceptions import BotoCoreError, NoCredentialsError, ProfileNotFound

    try:
        session = boto3.Session(profile_name=profile or None, region_name=region or None)
    except ProfileNotFound as error:
        raise CliError(str(error), EXIT_ENVIRONMENT) from None
    try:
        credentials = session.get_credentials()
    except BotoCoreError as error:  # a failing credential_process, SSO token, ...
        raise translate_aws_error(error, "loading credentials") from None
    if credentials is None:
        raise translate_aws_error(NoCredentialsError(), "connecting")
    return session


def _describe(cfn, stack_name: str, region: str, env_name: Optional[str]) -> Optional[Dict[str, Any]]:
    """The stack, or None when it does not exist."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if client_error_code(error) == "ValidationError" and "does not exist" in message:
            return None
        raise translate_aws_error(error, f"describing stack {stack_name} in {region}") from None
    except BotoCoreError as error:
        raise translate_aws_error(error, f"describing stack {stack_name} in {region}") from None


def efs_backup_stacks(cfn, region: str, env_name: Optional[str] = None) -> List[Dict[str, Any]]:
    """The efs-backup stacks of the region (``environment_of``), of one environment when named."""
    found = []
    pages = _aws(lambda: list(cfn.get_paginator("describe_stacks").paginate()), f"listing the stacks of {region}")
    for page in pages:
        for stack in page.get("Stacks", []):
            environment = environment_of(stack)
            if environment is None or stack.get("StackStatus") in GONE_STATUSES:
                continue
            if env_name is None or environment == env_name:
                found.append(stack)
    return sorted(found, key=lambda s: s["StackName"])


def _listing(stacks: Sequence[Mapping[str, Any]]) -> str:
    return ", ".join(f"{s['StackName']} (environment {environment_of(s)}, backup-id "
                     f"{_tags(s).get(TAG_BACKUP_ID) or _outputs(s).get(OUTPUT_BACKUP_ID) or '?'})" for s in stacks)


def connect(env_name: Optional[str], *, region: Optional[str], profile: Optional[str], overrides: Sequence[str],
            cdk_json: Optional[str], stack_name: Optional[str] = None) -> Deployment:
    """The deployment named by ``--stack`` or ``--env`` (module docstring), with its outputs and settings."""
    check_context_keys(overrides, OVERRIDE_KEYS, RESERVED_CONTEXT_KEYS)
    values = parse_overrides(overrides)  # every value checked before any AWS call
    stack_name = stack_name or values.get("stack_name")
    region = region or values.get("region")
    config_file = find_cdk_json(cdk_json)
    known = CdkJson.read(config_file) if config_file else None
    in_cdk_json = bool(env_name and known and env_name in known.environments)
    if not stack_name and not env_name:
        hint = f" (known: {', '.join(known.environments)}, in {known.path})" if known and known.environments else ""
        raise CliError(f"no environment: pass --env NAME or set EFS_BACKUP_ENV, or name the stack with --stack NAME"
                       f"{hint}", EXIT_ENVIRONMENT)
    if in_cdk_json:
        region = region or known.value(env_name, "region")
        stack_name = stack_name or known.stack_name(env_name)
    session = _session(profile, region)
    region = region or session.region_name
    if not region:
        if env_name and known and not in_cdk_json:
            raise CliError(f"unknown environment {env_name!r} in {known.path} (known: "
                           f"{', '.join(known.environments)}); pass --region to find its stack by tag",
                           EXIT_ENVIRONMENT)
        raise translate_aws_error(_no_region(), "connecting")
    deployment = Deployment(stack_name=stack_name or "?", region=region, session=session, environment=env_name)
    cfn = deployment.client("cloudformation")
    if stack_name:
        stack = _describe(cfn, stack_name, region, env_name)
        if stack is None:
            deploy = f"; deploy it with {deployment.redeploy}" if env_name else ""
            raise CliError(f"stack {stack_name} is not deployed in {region}{deploy}", EXIT_ENVIRONMENT)
        tagged = _tags(stack).get(TAG_ENVIRONMENT)
        if env_name and tagged and tagged != env_name:
            raise CliError(f"stack {stack_name} in {region} belongs to environment {tagged!r}, not {env_name!r} "
                           f"(tag {TAG_ENVIRONMENT})", EXIT_ENVIRONMENT)
    else:
        matches = efs_backup_stacks(cfn, region, env_name)
        if not matches:
            others = efs_backup_stacks(cfn, region)
            known_here = f"; efs-backup stacks in {region}: {_listing(others)}" if others else \
                f"; there is no efs-backup stack in {region} (another region? pass --region)"
            in_file = f" (and {known.path} knows only {', '.join(known.environments)})" if known else ""
            raise CliError(f"unknown environment {env_name!r}: no stack in {region} is tagged "
                           f"{TAG_ENVIRONMENT}={env_name} or is an efs-backup stack named "
                           f"{DEFAULT_STACK_NAME.format(environment=env_name)}{in_file}{known_here}", EXIT_ENVIRONMENT)
        if len(matches) > 1:
            raise CliError(f"environment {env_name!r} matches {len(matches)} stacks in {region}: "
                           f"{_listing(matches)}; choose one with --stack NAME", EXIT_ENVIRONMENT,
                           {"stacks": [s["StackName"] for s in matches]})
        stack = matches[0]
    deployment.stack_name = stack["StackName"]
    found_in = environment_of(stack)
    deployment.environment = found_in if found_in not in (None, "?") else env_name
    deployment.stack_status = stack["StackStatus"]
    if stack["StackStatus"].endswith("_FAILED") or stack["StackStatus"] in GONE_STATUSES:
        raise CliError(f"stack {deployment.stack_name} in {region} is {stack['StackStatus']}; fix it with "
                       f"{deployment.redeploy}", EXIT_ENVIRONMENT)
    deployment.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    template = template_body(_aws(cfn.get_template, f"reading the template of stack {deployment.stack_name}",
                                  StackName=deployment.stack_name))
    settings = read_settings(template, deployment.outputs, deployment.stack_name)
    deployment.settings = apply_overrides(settings, {k: v for k, v in values.items() if k not in LOCATION_KEYS})
    return deployment


def _no_region():
    from botocore.exceptions import NoRegionError

    return NoRegionError()


def environment_default() -> Optional[str]:
    return os.environ.get("EFS_BACKUP_ENV") or None
