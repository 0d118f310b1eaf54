"""From an environment name to the deployed resources: configuration via ``stacks.config.load_config`` (the only
reader of cdk.json context), the stack name and region from it, and every resource from the stack's outputs.

Nothing here hard-codes a resource name: the state machines, table and log group come from the outputs
(``StateMachineArn``, ``RestoreStateMachineArn``, ``RunHistoryTableName``, ``WorkerLogGroupName``, ``BackupId``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from efs_backup_cli.errors import EXIT_ENVIRONMENT, CliError
from efs_backup_cli.limits import check_context_keys

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the repository root when installed editable / run from it
# The outputs the CLI reads (stacks/efs_backup_stack.py); RestoreStateMachineArn only for restores.
EXPECTED_OUTPUTS = ("StateMachineArn", "RestoreStateMachineArn", "RunHistoryTableName", "WorkerLogGroupName",
                    "BackupId")
CREDENTIAL_ERRORS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                     "InvalidSignatureException", "SignatureDoesNotMatch", "AccessDeniedException", "AccessDenied",
                     "RequestExpired", "AuthFailure"}


def find_cdk_json(explicit: Optional[str] = None) -> Path:
    """--cdk-json / EFS_BACKUP_CDK_JSON, else cdk.json in the working directory or above, else the repository's."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise CliError(f"cdk.json not found at {path}", EXIT_ENVIRONMENT)
        return path
    for directory in (Path.cwd(), *Path.cwd().parents):
        candidate = directory / "cdk.json"
        if candidate.is_file() and (directory / "stacks" / "config.py").is_file():
            return candidate
    candidate = PACKAGE_ROOT / "cdk.json"
    if candidate.is_file():
        return candidate
    raise CliError("cdk.json not found (run from the efs-backup repository or pass --cdk-json PATH)",
                   EXIT_ENVIRONMENT)


def load_environment_config(env_name: Optional[str], overrides: Sequence[str], cdk_json: Path):
    """The frozen configuration of one environment, exactly as `npx cdk deploy -c env=NAME -c k=v` parses it."""
    if str(cdk_json.parent) not in sys.path:
        sys.path.insert(0, str(cdk_json.parent))  # stacks.config lives beside cdk.json
    from stacks.config import KEYS, RESERVED_CONTEXT_KEYS, ConfigError, load_config

    check_context_keys(overrides, KEYS, RESERVED_CONTEXT_KEYS)
    context: Dict[str, Any] = dict(json.loads(cdk_json.read_text())["context"])
    known = sorted(context.get("environments") or {})
    if not env_name:
        raise CliError(f"no environment: pass --env NAME or set EFS_BACKUP_ENV (known: {', '.join(known)})",
                       EXIT_ENVIRONMENT)
    if env_name not in known:
        raise CliError(f"unknown environment {env_name!r}; known environments: {', '.join(known)}", EXIT_ENVIRONMENT)
    for item in overrides:
        key, _, value = item.partition("=")
        context[key] = value
    context["env"] = env_name
    try:
        return load_config(context)
    except ConfigError as error:
        raise CliError(" ".join(str(error).split("\n")), EXIT_ENVIRONMENT) from None


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
        return CliError("no AWS region (the environment names one; pass --region)", EXIT_ENVIRONMENT)
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


@dataclass
class Deployment:
    """One deployed environment: its configuration, a session in its region and the stack outputs."""

    config: Any
    region: str
    session: Any
    outputs: Dict[str, str] = field(default_factory=dict)
    stack_status: str = "?"
    _clients: Dict[str, Any] = field(default_factory=dict)

    @property
    def stack_name(self) -> str:
        return self.config.stack_name

    @property
    def backup_id(self) -> str:
        return self.outputs.get("BackupId") or self.config.backup_id

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def output(self, key: str) -> str:
        """A stack output the CLI needs; missing, an error that says which and what the stack has."""
        value = self.outputs.get(key)
        if value:
            return value
        redeploy = f"`npx cdk deploy -c env={self.config.environment}`"
        if not self.outputs:
            raise CliError(f"stack {self.stack_name} in {self.region} ({self.stack_status}) has no outputs at all, "
                           f"so the CLI cannot find {key} (nor {', '.join(k for k in EXPECTED_OUTPUTS if k != key)}): "
                           f"it is not an efs-backup stack, or its deployment did not record them; redeploy with "
                           f"{redeploy}", EXIT_ENVIRONMENT, {"stack": self.stack_name, "missing_output": key})
        raise CliError(f"stack {self.stack_name} in {self.region} has no output {key} (it has "
                       f"{', '.join(sorted(self.outputs))}): it was deployed from a version without {key}; redeploy "
                       f"with {redeploy}", EXIT_ENVIRONMENT, {"stack": self.stack_name, "missing_output": key})

    def retain(self, interval: str) -> int:
        return next(p.retain for p in self.config.retention if p.interval == interval)

    def used_intervals(self):
        return [p.interval for p in self.config.retention if p.enabled]


def connect(env_name: Optional[str], *, region: Optional[str], profile: Optional[str], overrides: Sequence[str],
            cdk_json: Optional[str]) -> Deployment:
    config = load_environment_config(env_name, overrides, find_cdk_json(cdk_json))
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

    region = region or config.region
    try:
        session = boto3.Session(profile_name=profile or None, region_name=region)
    except ProfileNotFound as error:
        raise CliError(str(error), EXIT_ENVIRONMENT) from None
    try:
        credentials = session.get_credentials()
    except BotoCoreError as error:  # a failing credential_process, SSO token, ...
        raise translate_aws_error(error, "loading credentials") from None
    if credentials is None:
        raise translate_aws_error(NoCredentialsError(), "connecting")
    deployment = Deployment(config=config, region=region, session=session)
    try:
        stacks = deployment.client("cloudformation").describe_stacks(StackName=config.stack_name)["Stacks"]
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", "")
        if client_error_code(error) == "ValidationError" and "does not exist" in message:
            raise CliError(f"stack {config.stack_name} is not deployed in {region}; deploy it with "
                           f"`npx cdk deploy -c env={config.environment}`", EXIT_ENVIRONMENT) from None
        raise translate_aws_error(error, f"describing stack {config.stack_name}") from None
    except BotoCoreError as error:
        raise translate_aws_error(error, f"describing stack {config.stack_name}") from None
    stack = stacks[0]
    if stack["StackStatus"].endswith("_FAILED") or stack["StackStatus"] in ("DELETE_COMPLETE",
                                                                           "ROLLBACK_COMPLETE"):
        raise CliError(f"stack {config.stack_name} in {region} is {stack['StackStatus']}; fix it with "
                       f"`npx cdk deploy -c env={config.environment}`", EXIT_ENVIRONMENT)
    deployment.outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    deployment.stack_status = stack["StackStatus"]
    return deployment


def environment_default() -> Optional[str]:
    return os.environ.get("EFS_BACKUP_ENV") or None
