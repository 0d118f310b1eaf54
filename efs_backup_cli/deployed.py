"""What a deployment says about itself: the settings the CLI acts on, read from the deployed stack, never from the
CDK app's configuration code.

Sources (one ``DescribeStacks`` and one ``GetTemplate`` of the stack; no other call):

- outputs (``efs_backup_contract.deployment``): ``BackupId``, ``SourceFileSystemId`` and the resources;
- the tag ``efs-backup:environment``: the environment's name;
- the deployed template, read as data:
  - the backup state machine (the resource behind the ``StateMachineArn`` output): which intervals its input
    validation accepts (``{"Variable": "$.interval", "StringEquals": ...}``) and the retention each one sets
    (the ``Pass`` state it leads to, ``"ResultPath": "$.retain"``), and the default worker count (the ``Pass``
    state with ``"ResultPath": "$.workers"``) and streams per worker (``"ResultPath": "$.streams"``);
  - the restore state machine: the file systems its input validation lets a restore write to
    (``{"Variable": "$.request.target_file_system_id", "StringEquals": ...}``);
  - the EventBridge Scheduler schedules that start the backup state machine (their input names the interval);
  - the stale-snapshot alarms (metric ``NewestSnapshotTimestamp`` per ``Interval``): their thresholds are
    ``alarm_stale_multiple`` x the interval's length.

``-c key=value`` (``OVERRIDE_KEYS``) replaces a value read here, as a redeploy with ``-c key=value`` would: e.g.
``-c retain_daily=1`` shows which snapshots a lower retention keeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from efs_backup_contract.deployment import (METRIC_NEWEST_SNAPSHOT, OUTPUT_RESTORE_STATE_MACHINE,
                                            OUTPUT_SOURCE_FILE_SYSTEM, OUTPUT_STATE_MACHINE)
from efs_backup_contract.intervals import INTERVAL_SECONDS, INTERVALS
from efs_backup_contract.limits import MAX_RETAIN, MAX_STREAMS_PER_WORKER, MAX_WORKERS

from efs_backup_cli.errors import EXIT_ENVIRONMENT, CliError

_TOKEN = "<token>"  # a CloudFormation intrinsic inside a definition string (resource names, ARNs)


@dataclass(frozen=True)
class DeployedSettings:
    """The settings of one deployment that the CLI needs (see the module docstring for where each comes from)."""

    retain: Mapping[str, int]  # every interval; 0 = not used
    schedules: Mapping[str, Optional[str]]  # every interval; None = no schedule (manual runs only)
    stale_after: Mapping[str, Optional[int]]  # every interval; None = no stale alarm (not judged)
    stale_multiple: Optional[float]  # None when no interval has a stale alarm
    default_workers: Optional[int]
    source_file_system_id: Optional[str]
    writable_file_systems: Tuple[str, ...]  # production and restore_target_file_systems
    default_streams: Optional[int] = None  # worker_streams; None: deployed before streams per worker (1 each)

    def used_intervals(self) -> List[str]:
        return [interval for interval in INTERVALS if self.retain.get(interval, 0) > 0]

    @property
    def restore_targets(self) -> List[str]:
        return [fs for fs in self.writable_file_systems if fs != self.source_file_system_id]


# ---------------------------------------------------------------------------------------------- the template


def template_body(response: Mapping[str, Any]) -> Dict[str, Any]:
    """GetTemplate's TemplateBody: botocore decodes a JSON body into a mapping; a string is decoded here."""
    body = response.get("TemplateBody")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            raise CliError("the stack's template is not JSON (efs-backup deploys JSON templates): not an "
                           "efs-backup stack", EXIT_ENVIRONMENT) from None
    if not isinstance(body, Mapping):
        raise CliError("the stack's template has no body", EXIT_ENVIRONMENT)
    return dict(body)


def _output_resource(template: Mapping[str, Any], output: str) -> Optional[str]:
    value = ((template.get("Outputs") or {}).get(output) or {}).get("Value")
    return value.get("Ref") if isinstance(value, Mapping) else None


def _definition(template: Mapping[str, Any], logical_id: Optional[str]) -> Dict[str, Any]:
    """A state machine's definition; intrinsics (``Fn::Join`` parts that are not strings) become placeholders."""
    resource = (template.get("Resources") or {}).get(logical_id or "") or {}
    properties = resource.get("Properties") or {}
    definition = properties.get("DefinitionString")
    if isinstance(definition, Mapping) and "Fn::Join" in definition:
        separator, parts = definition["Fn::Join"]
        definition = separator.join(part if isinstance(part, str) else _TOKEN for part in parts)
    if isinstance(properties.get("Definition"), Mapping):
        return dict(properties["Definition"])
    if not isinstance(definition, str):
        return {}
    try:
        parsed = json.loads(definition)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _walk(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every mapping inside ``value``, depth first."""
    if isinstance(value, Mapping):
        yield value
        for child in value.values():
            yield from _walk(child)
    elif isinstance(value, list):
        for child in value:
            yield from _walk(child)


def _states(definition: Mapping[str, Any]) -> Dict[str, Mapping[str, Any]]:
    """Every state by name, nested Map/Parallel states included."""
    found: Dict[str, Mapping[str, Any]] = {}
    for node in _walk(definition):
        states = node.get("States")
        if isinstance(states, Mapping):
            found.update({name: state for name, state in states.items() if isinstance(state, Mapping)})
    return found


def _equals(rule: Any, variable: str) -> List[str]:
    return [node["StringEquals"] for node in _walk(rule)
            if node.get("Variable") == variable and isinstance(node.get("StringEquals"), str)]


def _retention(definition: Mapping[str, Any]) -> Dict[str, int]:
    """interval -> retain, from the choice rules on ``$.interval`` and the states they lead to."""
    states = _states(definition)
    retain: Dict[str, int] = {}
    for state in states.values():
        if state.get("Type") != "Choice":
            continue
        for rule in state.get("Choices") or []:
            target = states.get(rule.get("Next", ""), {})
            value = target.get("Result")
            if target.get("ResultPath") != "$.retain" or not isinstance(value, int) or isinstance(value, bool):
                continue
            for interval in _equals(rule, "$.interval"):
                if interval in INTERVALS:
                    retain[interval] = value
    return retain


def _default_workers(definition: Mapping[str, Any], path: str = "$.workers") -> Optional[int]:
    """The configured worker_count (the Pass state that sets $.workers when the input names none), or with
    path="$.streams" worker_streams (None: a stack deployed before streams per worker, i.e. one stream each)."""
    for state in _states(definition).values():
        value = state.get("Result")
        if state.get("Type") == "Pass" and state.get("ResultPath") == path and isinstance(value, int):
            return value
    return None


def _schedules(template: Mapping[str, Any], backup_machine: Optional[str]) -> Dict[str, str]:
    """interval -> schedule expression, of the schedules whose target is the backup state machine."""
    found: Dict[str, str] = {}
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::Scheduler::Schedule":
            continue
        properties = resource.get("Properties") or {}
        target = properties.get("Target") or {}
        if target.get("Arn") != {"Ref": backup_machine}:
            continue
        try:
            interval = json.loads(target.get("Input") or "{}").get("interval")
        except (ValueError, AttributeError):
            continue
        if interval in INTERVALS and isinstance(properties.get("ScheduleExpression"), str):
            found[interval] = properties["ScheduleExpression"]
    return found


def _stale_thresholds(template: Mapping[str, Any]) -> Dict[str, int]:
    """interval -> seconds, from the alarms on the newest-snapshot age of each interval."""
    found: Dict[str, int] = {}
    for resource in (template.get("Resources") or {}).values():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        properties = resource.get("Properties") or {}
        threshold = properties.get("Threshold")
        if not isinstance(threshold, (int, float)):
            continue
        for node in _walk(properties.get("Metrics") or []):
            if node.get("MetricName") != METRIC_NEWEST_SNAPSHOT:
                continue
            for dimension in node.get("Dimensions") or []:
                if dimension.get("Name") == "Interval" and dimension.get("Value") in INTERVALS:
                    found[dimension["Value"]] = int(threshold)
    return found


def read_settings(template: Mapping[str, Any], outputs: Mapping[str, str],
                  stack: str = "the stack") -> DeployedSettings:
    """The deployment's settings from its template and outputs (module docstring)."""
    backup_machine = _output_resource(template, OUTPUT_STATE_MACHINE)
    backup = _definition(template, backup_machine)
    restore = _definition(template, _output_resource(template, OUTPUT_RESTORE_STATE_MACHINE))
    retain = _retention(backup)
    if not retain:
        raise CliError(f"{stack}: its backup state machine sets no retention for any interval: not an efs-backup "
                       "stack, or one the CLI cannot read", EXIT_ENVIRONMENT)
    schedules = _schedules(template, backup_machine)
    thresholds = _stale_thresholds(template)
    multiples = {thresholds[i] / INTERVAL_SECONDS[i] for i in thresholds}
    source = outputs.get(OUTPUT_SOURCE_FILE_SYSTEM)
    writable = [source] if source else []
    for value in _equals(restore, "$.request.target_file_system_id"):
        if value not in writable:
            writable.append(value)
    return DeployedSettings(
        retain={i: retain.get(i, 0) for i in INTERVALS},
        schedules={i: schedules.get(i) for i in INTERVALS},
        stale_after={i: thresholds.get(i) for i in INTERVALS},
        stale_multiple=round(min(multiples), 6) if multiples else None,
        default_workers=_default_workers(backup),
        default_streams=_default_workers(backup, "$.streams"),
        source_file_system_id=source,
        writable_file_systems=tuple(writable),
    )


# ---------------------------------------------------------------------------------------------- -c overrides


def _integer(low: int, high: int) -> Callable[[str, str], int]:
    def parse(key: str, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise CliError(f"-c {key}={text}: expected a whole number {low}..{high}", EXIT_ENVIRONMENT)
        return value
    return parse


def _positive_number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value != value or value == float("inf"):
        raise CliError(f"-c {key}={text}: expected a number greater than 0", EXIT_ENVIRONMENT)
    return value


def _schedule(key: str, text: str) -> Optional[str]:
    value = text.strip()
    if value.lower() == "none":
        return None
    if not (value.startswith(("cron(", "rate(", "at(")) and value.endswith(")")):
        raise CliError(f"-c {key}={text}: expected none or an EventBridge Scheduler expression (cron(...), "
                       "rate(...))", EXIT_ENVIRONMENT)
    return value


def _name(key: str, text: str) -> str:
    if not text.strip():
        raise CliError(f"-c {key}=: expected a value", EXIT_ENVIRONMENT)
    return text.strip()


# Where the stack is (read before connecting) and the deployed values the CLI uses (replaced after reading them).
LOCATION_KEYS = {"stack_name": _name, "region": _name}
SETTING_KEYS: Dict[str, Callable[[str, str], Any]] = {
    **{f"retain_{i}": _integer(0, MAX_RETAIN) for i in INTERVALS},
    **{f"schedule_{i}": _schedule for i in INTERVALS},
    "alarm_stale_multiple": _positive_number,
    "worker_count": _integer(1, MAX_WORKERS),
    "worker_streams": _integer(1, MAX_STREAMS_PER_WORKER),
}
OVERRIDE_KEYS = tuple(LOCATION_KEYS) + tuple(SETTING_KEYS)


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """``key=value`` items (already checked by ``limits.check_context_keys``) -> typed values."""
    parsed: Dict[str, Any] = {}
    for item in items:
        key, _, text = item.partition("=")
        parse = LOCATION_KEYS.get(key) or SETTING_KEYS[key]
        parsed[key] = parse(key, text)
    return parsed


def apply_overrides(settings: DeployedSettings, overrides: Mapping[str, Any]) -> DeployedSettings:
    """The settings as a redeploy with these ``-c`` values would make them."""
    retain = dict(settings.retain)
    schedules = dict(settings.schedules)
    stale_after = dict(settings.stale_after)
    multiple = overrides.get("alarm_stale_multiple", settings.stale_multiple)
    for interval in INTERVALS:
        retain[interval] = overrides.get(f"retain_{interval}", retain[interval])
        schedules[interval] = overrides.get(f"schedule_{interval}", schedules[interval])
        if schedules[interval] is None or multiple is None:
            stale_after[interval] = None  # no schedule, no stale alarm
        elif "alarm_stale_multiple" in overrides or f"schedule_{interval}" in overrides:
            stale_after[interval] = int(round(multiple * INTERVAL_SECONDS[interval]))
    return replace(settings, retain=retain, schedules=schedules, stale_after=stale_after, stale_multiple=multiple,
                   default_workers=overrides.get("worker_count", settings.default_workers),
                   default_streams=overrides.get("worker_streams", settings.default_streams))
