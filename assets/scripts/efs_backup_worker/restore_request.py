"""A restore request (the restore execution's input, in a restore task as JSON text) turned into where to restore
and the engine's restore options.

The restore state machine checks the values of the fields it knows before anything is launched, but lets any other
field through (constructs/restore_workflow.py). So this module refuses every field not in
efs_backup_contract.task.RESTORE_REQUEST_FIELDS: a misspelt "dry_run" must never turn into a real restore. It also
refuses what the shell protocol or the kernel cannot carry (a NUL character, a path longer than PATH_MAX) and a
target path that could leave the target file system. What only the engine can judge (does the snapshot exist, is a
path in it, is it relative) the engine judges, under the backup-id's lock.

The engine options are built as ``--option=VALUE`` single arguments: a value starting with "-" stays a value.
"""

import json
import posixpath
import re
from collections import namedtuple

from efs_backup_contract.task import RESTORE_REQUEST_FIELDS
from efs_backup_worker.task import FILE_SYSTEM_ID_RE, shown, utf8

# The default target: a new directory <DEFAULT_PARENT>/<run id> on the production file system (worker.sh creates
# the parent, mode 0700: root only until an operator moves the restored files).
DEFAULT_PARENT = "efs-backup-restore"
# PATH_MAX on Linux (bytes, with the terminating NUL): no longer path can be opened, so none can be restored.
MAX_PATH_BYTES = 4096

# Field names shown as they are in a refusal (others are quoted and cut: a name may be anything JSON allows).
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# target_file_system_id; target_dir: under the target's mount point, normalised, without a leading "/" ("" for the
# root); default_parent: DEFAULT_PARENT when the target is the default one, else ""; dry_run: a bool;
# engine_args: the engine's selection and mode options (--snapshot=/--at=, --path=..., --mirror, --dry-run).
RestorePlan = namedtuple("RestorePlan", "target_file_system_id target_dir default_parent dry_run engine_args")


class RequestRefused(ValueError):
    """The restore request is not one a restore may run from (the message says why)."""


def _is_text(value):
    """A non-empty string a command line can carry (no NUL) and the kernel can take as a path."""
    return (isinstance(value, str) and value != "" and "\0" not in value and utf8(value) is not None
            and len(utf8(value)) < MAX_PATH_BYTES)


def parse_request(text, production_file_system_id, run_id):
    """The RestorePlan of the request ``text`` (JSON); RequestRefused if it must not run."""
    try:
        request = json.loads(text)
    except ValueError as error:
        raise RequestRefused("the request is not JSON: %s" % error)
    if not isinstance(request, dict):
        raise RequestRefused("the request is not a JSON object")
    unknown = sorted(set(request) - set(RESTORE_REQUEST_FIELDS))
    if unknown:  # a misspelt "dry_run" must never turn into a real restore
        raise RequestRefused("unknown field(s) %s" % ", ".join(name if _PLAIN_NAME.fullmatch(name) else shown(name)
                                                               for name in unknown))
    selectors = [name for name in ("snapshot", "at") if name in request]
    if len(selectors) != 1:
        raise RequestRefused("give exactly one of snapshot and at")
    (selector,) = selectors
    if not _is_text(request[selector]):
        raise RequestRefused("%s %s must be a non-empty string (no NUL, under %d bytes)"
                             % (selector, shown(request[selector]), MAX_PATH_BYTES))

    file_system = request.get("target_file_system_id", production_file_system_id)
    if not isinstance(file_system, str) or not FILE_SYSTEM_ID_RE.fullmatch(file_system):
        raise RequestRefused("target_file_system_id %s is not a file system id" % shown(file_system))
    default = "target_path" not in request
    path = request.get("target_path", "/%s/%s" % (DEFAULT_PARENT, run_id))
    if not _is_text(path) or not path.startswith("/") or ".." in path.split("/"):
        raise RequestRefused("target_path %s must be an absolute path without '..'" % shown(path))

    paths = request.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise RequestRefused("paths must be a list of non-empty relative paths")
    for index, item in enumerate(paths):
        if not _is_text(item):
            raise RequestRefused("paths[%d] %s must not hold a NUL character or reach %d bytes"
                                 % (index, shown(item), MAX_PATH_BYTES))
    for flag in ("mirror", "dry_run"):
        if not isinstance(request.get(flag, False), bool):
            raise RequestRefused("%s must be true or false" % flag)

    args = ["--%s=%s" % (selector, request[selector])]
    args += ["--path=%s" % item for item in paths]
    if request.get("mirror"):
        args.append("--mirror")
    if request.get("dry_run"):
        args.append("--dry-run")
    return RestorePlan(target_file_system_id=file_system, target_dir=posixpath.normpath(path).lstrip("/"),
                       default_parent=DEFAULT_PARENT if default else "", dry_run=bool(request.get("dry_run")),
                       engine_args=tuple(args))
