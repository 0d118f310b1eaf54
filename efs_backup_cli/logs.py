"""Worker logs (output ``WorkerLogGroupName``): one stream per task, ``<execution>/<role>-<index>``.

Roles: ``work``, ``finalize``, ``abort`` (backups) and ``restore-work``, ``restore-finalize``, ``restore-abort``
(restores). Streams are shown in run order (work, finalize, abort; each by index), every stream from its start,
following the API's pagination to the end.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterator, List, Optional

from efs_backup_contract.deployment import OUTPUT_WORKER_LOG_GROUP

from efs_backup_cli.discovery import translate_aws_error

ROLES = ("work", "finalize", "abort", "restore-work", "restore-finalize", "restore-abort")
_ORDER = {role: index for index, role in enumerate(("work", "restore-work", "finalize", "restore-finalize", "abort",
                                                    "restore-abort"))}
_STREAM = re.compile(r"^(?P<execution>.+)/(?P<role>[a-z-]+)-(?P<index>[0-9]+)$")


def _botocore(error: Exception) -> bool:
    return type(error).__module__.startswith("botocore")


def stream_order(name: str):
    match = _STREAM.match(name)
    if not match:
        return (len(_ORDER), 0, name)
    return (_ORDER.get(match.group("role"), len(_ORDER)), int(match.group("index")), name)


def streams(deployment, execution: str, role: Optional[str] = None) -> List[str]:
    group = deployment.output(OUTPUT_WORKER_LOG_GROUP)
    logs = deployment.client("logs")
    prefix = f"{execution}/{role}-" if role else f"{execution}/"
    names: List[str] = []
    kwargs: Dict[str, Any] = {"logGroupName": group, "logStreamNamePrefix": prefix}
    try:
        while True:
            page = logs.describe_log_streams(**kwargs)
            names.extend(s["logStreamName"] for s in page.get("logStreams", []))
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    except Exception as error:
        if _botocore(error):
            raise translate_aws_error(error, f"listing log streams of {group}") from None
        raise
    if role:  # "work-" also prefixes nothing else, but keep exactly this role's streams
        names = [n for n in names if (_STREAM.match(n) or {}) and _STREAM.match(n).group("role") == role]
    return sorted(names, key=stream_order)


def events(deployment, stream: str) -> Iterator[Dict[str, Any]]:
    """Every event of one stream, oldest first (get_log_events until the forward token stops moving)."""
    group = deployment.output(OUTPUT_WORKER_LOG_GROUP)
    logs = deployment.client("logs")
    kwargs: Dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
    try:
        while True:
            page = logs.get_log_events(**kwargs)
            yield from page.get("events", [])
            token = page.get("nextForwardToken")
            if not token or token == kwargs.get("nextToken"):  # an empty page is not the end: quiet stretches
                return
            kwargs["nextToken"] = token
    except Exception as error:
        if _botocore(error):
            raise translate_aws_error(error, f"reading log stream {stream}") from None
        raise
