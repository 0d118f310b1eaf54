"""The commands worker.sh runs: ``efs-backup-worker COMMAND ARGS`` (python3 on the instance).

Large inputs (a restore request, an engine result: up to 256 KiB) come on stdin, never as an argument (the kernel
takes at most 128 KiB in one). Values come back on stdout, each followed by a NUL (worker.sh reads them with ``read -d ''`` and only ever passes
them on as single arguments); a refusal prints its reason on stderr and exits EXIT_REFUSED with nothing on stdout
(except ``task-fields``: see there).

    task-pointer POINTER_FILE            region, bucket, key
    object-version GET_OBJECT_OUTPUT     the VersionId in get-object's JSON output ("" if none)
    task-fields TASK_FILE                NAME, VALUE pairs: task_token first, then the fields of the task's role
    restore-request PRODUCTION_FS_ID RUN_ID < REQUEST_JSON
                                         target file system, target directory (under the target mount), default
                                         parent ("" unless the default target), dry run ("1" or ""), engine args...
    log-batch LOG_FILE OFFSET_FILE EVENTS_FILE [--final]
                                         writes the next batch to EVENTS_FILE; prints "NEXT_OFFSET COUNT" (a line)
    error-name EXIT_CODE                 the error name a worker reports for an engine exit code (a line)
    failed-parts < ENGINE_JSON           the failed parts the engine's result lists, for a cause (a line)
"""

import argparse
import sys

from efs_backup_contract.exits import EXIT_REFUSED
from efs_backup_worker import log_batches, report, restore_request, task


def _values(values):
    """Writes each value followed by a NUL (as the bytes it stands for: see task.utf8)."""
    sys.stdout.buffer.write(b"".join(task.utf8(value) + b"\0" for value in values))
    sys.stdout.buffer.flush()


def _refuse(message):
    sys.stderr.write("%s\n" % message)
    return EXIT_REFUSED


def _read(path):
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        return handle.read()


def _stdin():
    return sys.stdin.buffer.read().decode("utf-8", "surrogateescape")


def task_pointer(args):
    try:
        _values(task.read_pointer(_read(args.pointer_file)))
    except (OSError, task.TaskRefused) as error:
        return _refuse("task pointer %s: %s" % (args.pointer_file, error))
    return 0


def object_version(args):
    _values([task.object_version(args.output)])
    return 0


def task_fields(args):
    """A refused task still yields its task token and region when they are valid (so the refusal can be reported
    instead of leaving the Step Functions task to time out): then the exit code says it was refused."""
    try:
        pairs, ignored = task.parse_task(_read(args.task_file))
    except OSError as error:
        return _refuse("task object %s is unreadable: %s" % (args.task_file, error))
    except task.TaskRefused as refused:
        _values(value for pair in refused.known.items() for value in pair)
        return _refuse("task object %s refused: %s" % (args.task_file, refused))
    for name in ignored:
        sys.stderr.write("ignoring unknown task field %s\n" % task.shown(name))
    _values(value for pair in pairs for value in pair)
    return 0


def restore_request_command(args):
    try:
        plan = restore_request.parse_request(_stdin(), args.production_file_system_id, args.run_id)
    except restore_request.RequestRefused as error:
        return _refuse("invalid restore request: %s" % error)
    _values([plan.target_file_system_id, plan.target_dir, plan.default_parent, "1" if plan.dry_run else ""]
            + list(plan.engine_args))
    return 0


def log_batch(args):
    next_offset, count = log_batches.write_batch(args.log_file, args.offset_file, args.events_file,
                                                 final=args.final)
    print(next_offset, count)
    return 0


def error_name(args):
    print(report.error_name(args.exit_code))
    return 0


def failed_parts(args):
    print(report.failed_parts(_stdin()))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="efs-backup-worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("task-pointer")
    p.add_argument("pointer_file")
    p.set_defaults(run=task_pointer)
    p = sub.add_parser("object-version")
    p.add_argument("output")
    p.set_defaults(run=object_version)
    p = sub.add_parser("task-fields")
    p.add_argument("task_file")
    p.set_defaults(run=task_fields)
    p = sub.add_parser("restore-request")
    p.add_argument("production_file_system_id")
    p.add_argument("run_id")
    p.set_defaults(run=restore_request_command)
    p = sub.add_parser("log-batch")
    p.add_argument("log_file")
    p.add_argument("offset_file")
    p.add_argument("events_file")
    p.add_argument("--final", action="store_true", help="the worker is stopping: ship the last partial line too")
    p.set_defaults(run=log_batch)
    p = sub.add_parser("error-name")
    p.add_argument("exit_code", type=int)
    p.set_defaults(run=error_name)
    p = sub.add_parser("failed-parts")
    p.set_defaults(run=failed_parts)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)
