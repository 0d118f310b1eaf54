"""The task pointer and the task object of one worker instance, checked field by field.

The user data writes the pointer ``{"region", "bucket", "key"}``: where the state machine put this instance's task
object in S3. The task object is ``{"task_token": "...", "task": {...}}`` (efs_backup_contract.task has its
fields by role). Every value ends up in a command line, a mount, a path or a log stream name, so each is checked
for what it must be, and a task that is not exactly right is refused as a whole (with the reason), never half used.
"""

import json
import re

from efs_backup_contract.intervals import INTERVALS
from efs_backup_contract.limits import MAX_RETAIN, MAX_STREAMS_PER_WORKER, MAX_WORKERS
from efs_backup_contract.task import POINTER_FIELDS, ROLES, TASK_TOKEN, task_fields
from efs_backup_engine.layout import BACKUP_ID_RE

# EFS file system ids: fs- and 8 or 17 hex digits.
FILE_SYSTEM_ID_RE = re.compile(r"^fs-(?:[0-9a-f]{8}|[0-9a-f]{17})$")
REGION_RE = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$")
# Bucket names: 3-63 of lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit
# (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024  # an S3 object key is at most 1,024 bytes of UTF-8 (same page as above, "Object key names")
# Log group names: 1-512 of a-z, A-Z, 0-9, '_', '-', '/', '.', '#'
# (https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html).
LOG_GROUP_RE = re.compile(r"^[A-Za-z0-9_./#-]{1,512}$")
# The run id is the execution's name: 1-80 characters, none of whitespace, < > { } [ ] ? * " # % \ ^ | ~ ` $ & , ;
# : / or control characters (https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html).
# It names a log stream, the run's files on the backup file system and the default restore directory, so "." and
# ".." (names AWS allows) are refused too.
RUN_ID_RE = re.compile(r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}$")
# heartbeat_seconds: the task's heartbeat timeout / 5 (at most 720 s); a day is far above anything configurable.
MAX_HEARTBEAT_SECONDS = 86400
# A task token's length: SendTaskSuccess's taskToken has been documented as at most 1,024 and later 2,048
# characters (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html); this cap,
# far above both, only bounds a corrupt value and must never refuse a real token.
MAX_TOKEN_BYTES = 8192


class TaskRefused(ValueError):
    """The pointer or task object is not what a state machine writes. ``known`` holds the task token and region when
    they were valid, so the refusal can still be reported to the waiting task."""

    def __init__(self, message, known=None):
        super().__init__(message)
        self.known = dict(known or {})


def shown(value, limit=80):
    """A value for an error message: its repr, cut to ``limit`` characters (a refused value may be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def utf8(value):
    """The bytes a string stands for on a command line or in a file name: UTF-8, where a lone surrogate
    U+DC80..U+DCFF stands for an undecodable byte (as in Python's own argv and os functions); None if the string
    holds another lone surrogate (it stands for no bytes at all)."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def read_pointer(text):
    """(region, bucket, key) from the pointer file's text; TaskRefused if it is not a valid pointer."""
    try:
        pointer = json.loads(text)
    except ValueError as error:
        raise TaskRefused("the task pointer is not JSON: %s" % error)
    if not isinstance(pointer, dict):
        raise TaskRefused("the task pointer is not a JSON object")
    missing = [name for name in POINTER_FIELDS if name not in pointer]
    if missing:
        raise TaskRefused("the task pointer lacks %s" % ", ".join(missing))
    region, bucket, key = (pointer[name] for name in POINTER_FIELDS)
    if not isinstance(region, str) or not REGION_RE.fullmatch(region):
        raise TaskRefused("the task pointer's region %s is not a region" % shown(region))
    if not isinstance(bucket, str) or not BUCKET_RE.fullmatch(bucket):
        raise TaskRefused("the task pointer's bucket %s is not a bucket name" % shown(bucket))
    if (not isinstance(key, str) or not key or "\0" in key or key.startswith("-") or utf8(key) is None
            or len(utf8(key)) > MAX_KEY_BYTES):
        raise TaskRefused("the task pointer's key %s is not an object key" % shown(key))
    return region, bucket, key


def object_version(get_object_output):
    """The VersionId in ``aws s3api get-object``'s JSON output, or "" (an unversioned bucket, or no JSON)."""
    try:
        output = json.loads(get_object_output)
    except ValueError:
        return ""
    version = output.get("VersionId") if isinstance(output, dict) else None
    return version if isinstance(version, str) and version != "null" and "\0" not in version else ""


def _check(name, value):
    """The reason ``value`` is not a valid ``name`` field, or None."""
    if name == "role":
        return None if value in ROLES else "role %s is not one of %s" % (shown(value), ", ".join(ROLES))
    if name in ("worker_index", "worker_count", "retain", "heartbeat_seconds", "streams"):
        low, high = {"worker_index": (0, MAX_WORKERS - 1), "worker_count": (1, MAX_WORKERS),
                     "retain": (1, MAX_RETAIN), "heartbeat_seconds": (1, MAX_HEARTBEAT_SECONDS),
                     "streams": (1, MAX_STREAMS_PER_WORKER)}[name]
        if not _is_int(value) or not low <= value <= high:
            return "%s %s is not a whole number from %d to %d" % (name, shown(value), low, high)
        return None
    if not isinstance(value, str):
        return "%s %s is not a string" % (name, shown(value))
    if name == "interval":
        ok = value in INTERVALS
        what = "one of " + ", ".join(INTERVALS)
    elif name == "backup_id":
        ok, what = BACKUP_ID_RE.fullmatch(value), "a backup id"
    elif name in ("source_file_system_id", "backup_file_system_id"):
        ok, what = FILE_SYSTEM_ID_RE.fullmatch(value), "a file system id"
    elif name == "region":
        ok, what = REGION_RE.fullmatch(value), "a region"
    elif name == "log_group":
        ok, what = LOG_GROUP_RE.fullmatch(value), "a log group name"
    elif name == "run_id":
        ok, what = RUN_ID_RE.fullmatch(value) and value not in (".", ".."), "an execution name"
    else:  # request: JSON text, checked by restore_request
        ok, what = value and "\0" not in value and utf8(value) is not None, "a restore request"
    return None if ok else "%s %s is not %s" % (name, shown(value), what)


def parse_task(text):
    """The task object's fields for its role, in contract order, as (name, value) pairs of strings, the task token
    first; TaskRefused (with the reason) if the object is not exactly a task of its role. Unknown fields are
    returned in ``ignored`` beside them, for the log."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise TaskRefused("the task object is not JSON: %s" % error)
    if not isinstance(data, dict) or not isinstance(data.get("task"), dict):
        raise TaskRefused("the task object is not {\"task_token\": ..., \"task\": {...}}")
    task, token, known = data["task"], data.get(TASK_TOKEN), {}
    if (isinstance(token, str) and token and "\0" not in token and utf8(token) is not None
            and len(utf8(token)) <= MAX_TOKEN_BYTES):
        known[TASK_TOKEN] = token
    if isinstance(task.get("region"), str) and REGION_RE.fullmatch(task["region"]):
        known["region"] = task["region"]
    if TASK_TOKEN not in known:
        raise TaskRefused("the task object's %s is missing or not a task token" % TASK_TOKEN)
    role = task.get("role")
    if role not in ROLES:
        raise TaskRefused("role %s is not one of %s" % (shown(role), ", ".join(ROLES)), known)
    fields = task_fields(role)
    for name in fields:
        if name not in task:
            raise TaskRefused("the task lacks %s" % name, known)
        reason = _check(name, task[name])
        if reason:
            raise TaskRefused(reason, known)
    if task["worker_index"] >= task["worker_count"]:
        raise TaskRefused("worker_index %d is not below worker_count %d" % (task["worker_index"],
                                                                            task["worker_count"]), known)
    ignored = sorted(name for name in task if name not in fields)
    pairs = [(TASK_TOKEN, known[TASK_TOKEN])] + [(name, str(task[name])) for name in fields]
    return pairs, ignored

