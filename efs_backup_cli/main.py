"""efs-backup: the operator's command line for a deployed efs-backup environment.

    efs-backup [--env NAME] [--region R] [--profile P] [--json] [-c key=value]... COMMAND ...

Commands: ``run``, ``status``, ``list``, ``restore``, ``logs``, ``plan`` (``--help`` on each). The environment
(``--env`` or ``EFS_BACKUP_ENV``) is parsed from cdk.json by ``stacks.config.load_config``, exactly as
``npx cdk deploy -c env=NAME`` does (``-c key=value`` overrides too); every resource comes from the stack's outputs.
With ``--json`` the result is one JSON document on stdout and everything else goes to stderr.

Exit codes:
    0   ok
    1   the run (backup or restore) failed, or was still running when --timeout ended the wait; ``status``: the
        last run of an interval failed
    2   succeeded with warnings (``status``: a stale snapshot or a last run with warnings; ``plan``: no fleet
        fits the window)
    3   refused: invalid request, declined confirmation, no terminal to confirm on, nothing to restore, a request
        the engine refused (EngineRefused: a path not in the snapshot, an adopted snapshot, ...),
        an unused interval
    4   busy: another run of this backup-id is in progress (outcome ``already-running``, or the run failed because
        another run holds the backup-id's lock: EngineBusy)
    5   environment problem: no or expired credentials, unknown environment, stack not deployed, output missing
    64  usage error (bad arguments)
    130 interrupted (Ctrl-C); an execution already started keeps running
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, Optional, Sequence

from efs_backup_cli import executions, history, logs, planner, restore
from efs_backup_cli.discovery import connect, environment_default
from efs_backup_cli.errors import (EXIT_BUSY, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK,
                                   EXIT_REFUSED, EXIT_USAGE, EXIT_WARNINGS, CliError)

INTERVALS = ("hourly", "daily", "weekly", "monthly")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2, which is "warnings" here
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    def globals_parser(suppress: bool) -> argparse.ArgumentParser:
        """The global options, accepted before and after the command (after it, only when given: argparse would
        otherwise let the subcommand's defaults overwrite values given before the command)."""
        def default(value):
            return argparse.SUPPRESS if suppress else value

        options = _Parser(add_help=False)
        options.add_argument("--env", default=default(None), help="environment in cdk.json (default: $EFS_BACKUP_ENV)")
        options.add_argument("--region", default=default(None), help="override the environment's region")
        options.add_argument("--profile", default=default(None), help="AWS profile")
        options.add_argument("--json", action="store_true", default=default(False),
                             help="machine output on stdout only")
        options.add_argument("-c", "--context", action="append", default=default([]), metavar="KEY=VALUE",
                             help="configuration override, as with `npx cdk deploy -c`")
        options.add_argument("--cdk-json", default=default(os.environ.get("EFS_BACKUP_CDK_JSON")),
                             help=argparse.SUPPRESS)
        return options

    top, common = globals_parser(False), globals_parser(True)
    parser = _Parser(prog="efs-backup", description=__doc__.split("\n\n")[0], parents=[top],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", parents=[common], help="start a backup run")
    run.add_argument("--interval", required=True, choices=INTERVALS)
    run.add_argument("--workers", type=_positive_int)
    run.add_argument("--wait", action="store_true", help="follow the run to its end")
    run.add_argument("--timeout", type=float, default=None, help="stop waiting after S seconds (with --wait)")

    sub.add_parser("status", parents=[common], help="running executions, last outcomes, snapshot ages")

    listing = sub.add_parser("list", parents=[common], help="snapshots from the run history")
    listing.add_argument("--interval", choices=INTERVALS)

    rst = sub.add_parser("restore", parents=[common], help="restore from a snapshot (dry run, confirm, restore)")
    which = rst.add_mutually_exclusive_group(required=True)
    which.add_argument("--snapshot", help="<interval>.<n> (from `list`) or latest")
    which.add_argument("--snapshot-id", help="the snapshot_id shown by `list`")
    which.add_argument("--at", help="the newest snapshot at or before this ISO time")
    rst.add_argument("--path", action="append", default=[], dest="paths", help="restore only this path (repeat)")
    rst.add_argument("--target-path", help="target directory (default /efs-backup-restore/<execution>)")
    rst.add_argument("--target-file-system", help="target file system id (default: production)")
    rst.add_argument("--in-place", action="store_true", help="restore onto the original paths (target '/')")
    rst.add_argument("--mirror", action="store_true", help="also delete what the snapshot does not have")
    rst.add_argument("--dry-run", action="store_true", help="show the plan and stop")
    rst.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rst.add_argument("--workers", type=_positive_int)
    rst.add_argument("--no-wait", action="store_true", help="start the restore and return")
    rst.add_argument("--timeout", type=float, default=None, help="stop waiting after S seconds")

    lg = sub.add_parser("logs", parents=[common], help="worker logs of an execution")
    pick = lg.add_mutually_exclusive_group()
    pick.add_argument("--execution", help="execution name")
    pick.add_argument("--last", action="store_true", help="the newest execution (default)")
    lg.add_argument("--role", choices=logs.ROLES)

    pl = sub.add_parser("plan", parents=[common], help="sizing planner (no AWS access)")
    pl.add_argument("--size", help="file system size, e.g. 2TiB")
    pl.add_argument("--files", help="file count, e.g. 30M")
    pl.add_argument("--average-file-size", help="e.g. 64KiB")
    pl.add_argument("--daily-change", required=True, help="share changed per run, e.g. 2%%")
    pl.add_argument("--throughput-mode", required=True, choices=tuple(planner.EFS_LIMITS))
    pl.add_argument("--provisioned-mibps", type=float)
    pl.add_argument("--window", required=True, help="backup window, e.g. 4h")
    pl.add_argument("--old-table", action="store_true", help="also reproduce the old Data Pipeline sizing table")
    return parser


# --------------------------------------------------------------------------------------------------- output


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def info(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def result(self, document: Any, text: str) -> None:
        if self.as_json:
            print(json.dumps(document, sort_keys=True, default=str), flush=True)
        elif text:
            print(text, flush=True)


def _connect(args):
    return connect(args.env or environment_default(), region=args.region, profile=args.profile,
                   overrides=args.context, cdk_json=args.cdk_json)


def _age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    return planner.format_duration(max(0.0, seconds))


# --------------------------------------------------------------------------------------------------- run


def cmd_run(args, out: Output) -> int:
    deployment = _connect(args)
    retain = deployment.retain(args.interval)
    if retain < 1:
        used = ", ".join(deployment.used_intervals())
        raise CliError(f"interval {args.interval} is not used in environment {deployment.config.environment} "
                       f"(retain_{args.interval} is 0); used: {used}", EXIT_REFUSED)
    arn = deployment.output("StateMachineArn")
    payload: Dict[str, Any] = {"interval": args.interval}  # retention is part of the deployment
    if args.workers:
        payload["workers"] = args.workers
    name = f"manual-{args.interval}-{executions.utc_stamp()}"
    execution = executions.start(deployment, arn, name, payload)
    out.info(f"started {name} ({args.interval}, retain {retain}, workers "
             f"{payload.get('workers', deployment.config.workers.count)})")
    if not args.wait:
        out.result({"execution": name, "execution_arn": execution, "input": payload}, execution)
        return EXIT_OK
    total = payload.get("workers", deployment.config.workers.count)

    def report(progress: executions.Progress, described: Dict[str, Any]) -> None:
        out.info(f"  {described['status'].lower()}: workers reported {progress.reported}/{total}, "
                 f"{planner.format_bytes(progress.bytes_transferred)} transferred, "
                 f"{progress.files_scanned:,} files scanned")

    described = executions.wait(deployment, execution, timeout=args.timeout, on_progress=report)
    outcome = executions.backup_outcome(described)
    record = history.record(deployment, name)
    document = {"execution": name, "execution_arn": execution, "status": described["status"],
                "outcome": outcome["outcome"], "summary": outcome.get("summary") or (record.summary if record else None),
                "record": record.to_json() if record else None}
    if outcome["outcome"] == "already-running":
        out.result(document, f"{name}: already-running ({outcome.get('message')})")
        return EXIT_BUSY
    summary = document["summary"] or {}
    if outcome["outcome"] == "failed":
        error = (record.error if record else None) or f"{outcome.get('error')}: {outcome.get('cause')}"
        failed = summary.get("failed_parts") or []
        lines = [f"{name}: FAILED ({described['status']}); {error}"]
        lines += [f"  failed part {p.get('path')}: {p.get('reason')}" for p in failed[:10]]
        out.result(document, "\n".join(lines))
        return _failed_exit(record)
    totals = summary.get("totals", {})
    text = (f"{name}: {outcome['outcome']} -> {summary.get('snapshot')} (id {summary.get('snapshot_id')}), "
            f"{totals.get('files_scanned', 0):,} files scanned, {totals.get('files_transferred', 0):,} transferred "
            f"({planner.format_bytes(totals.get('bytes_transferred', 0))}), {summary.get('warnings', 0)} warnings, "
            f"{summary.get('duration_seconds', 0)} s")
    out.result(document, text)
    return EXIT_WARNINGS if outcome["outcome"] == "warning" else EXIT_OK


# --------------------------------------------------------------------------------------------------- status / list


def cmd_status(args, out: Output) -> int:
    deployment = _connect(args)
    machines = {"backup": deployment.output("StateMachineArn")}
    if deployment.outputs.get("RestoreStateMachineArn"):
        machines["restore"] = deployment.outputs["RestoreStateMachineArn"]
    running = [{"kind": kind, "name": e["name"], "started": e["startDate"]}
               for kind, arn in machines.items() for e in executions.running(deployment, arn)]
    all_runs = history.runs(deployment)
    backup_runs = history.backups(all_runs)
    intervals = []
    code = EXIT_OK
    now = time.time()
    for interval in deployment.used_intervals():
        mine = [r for r in backup_runs if r.interval == interval]
        last = mine[0] if mine else None
        good = next((r for r in mine if r.status in history.SUCCESS), None)
        age = history.age_seconds(good, now) if good else None
        stale = good is None or age is None or age > 2 * history.INTERVAL_SECONDS[interval]
        entry = {"interval": interval, "retain": deployment.retain(interval),
                 "last": last.to_json() if last else None,
                 "newest_snapshot": good.to_json() if good else None, "newest_age_seconds": age, "stale": stale,
                 "last_warnings": (last.summary.get("warning_parts") or []) if last else [],
                 "last_failed_parts": (last.summary.get("failed_parts") or []) if last else []}
        intervals.append(entry)
        if last and last.status == "failed":
            code = EXIT_FAILED
        elif (stale or (last and last.status == "warning")) and code == EXIT_OK:
            code = EXIT_WARNINGS
    lines = [f"efs-backup {deployment.config.environment}: stack {deployment.stack_name} ({deployment.region}), "
             f"backup-id {deployment.backup_id}"]
    lines.append("running: " + (", ".join(f"{r['kind']} {r['name']}" for r in running) if running else "none"))
    for entry in intervals:
        last = entry["last"]
        flag = "  STALE (older than 2 x the interval)" if entry["stale"] else ""
        lines.append(f"  {entry['interval']:<8} last {last['status'] if last else 'never'}"
                     f"{' (' + last['execution'] + ')' if last else ''}; newest snapshot "
                     f"{_age(entry['newest_age_seconds'])} old{flag}")
        for part in entry["last_warnings"][:5]:
            lines.append(f"      warning {part.get('path')}: {' | '.join(part.get('messages') or [])}")
        for part in entry["last_failed_parts"][:5]:
            lines.append(f"      failed {part.get('path')}: {part.get('reason')}")
        if last and last.get("error"):
            lines.append(f"      error: {last['error']}")
    out.result({"environment": deployment.config.environment, "stack": deployment.stack_name,
                "region": deployment.region, "backup_id": deployment.backup_id, "running": running,
                "intervals": intervals}, "\n".join(lines))
    return code


def cmd_list(args, out: Output) -> int:
    deployment = _connect(args)
    if args.interval and deployment.retain(args.interval) < 1:
        raise CliError(f"interval {args.interval} is not used (retain_{args.interval} is 0)", EXIT_REFUSED)
    rows = history.snapshots(deployment, history.runs(deployment), args.interval)
    lines = ["%-12s %-20s %12s %12s %-9s %s" % ("snapshot", "finished", "files", "bytes", "status", "snapshot_id")]
    for row in rows:
        lines.append("%-12s %-20s %12s %12s %-9s %s" % (
            row["name"], row["finished"] or "-", f"{row['files']:,}" if row["files"] is not None else "-",
            planner.format_bytes(row["bytes"]) if row["bytes"] is not None else "-", row["status"],
            row["snapshot_id"] or "-"))
    if not rows:
        lines.append("(no successful backup in the run history)")
    out.result({"snapshots": rows}, "\n".join(lines))
    return EXIT_OK


# --------------------------------------------------------------------------------------------------- restore


def _confirm(prompt: str, expected: str) -> bool:
    print(prompt, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return answer.strip() == expected


def _failed_exit(record: Optional[history.Run]) -> int:
    """The exit code of a failed run, from the error its workers reported: another run holds the backup-id's lock
    (EngineBusy) is busy (4, like already-running); a precondition the engine refused (EngineRefused: a path not
    in the snapshot, an adopted snapshot, ...) is refused (3); anything else failed (1)."""
    error = (record.error if record is not None else None) or ""
    if "EngineBusy" in error:
        return EXIT_BUSY
    return EXIT_REFUSED if "EngineRefused" in error else EXIT_FAILED


def _failure(record: Optional[history.Run], execution: str, described: Dict[str, Any]) -> str:
    """Why an execution failed: the run-history record's error and the engine's reason, else the execution's."""
    if record is None:
        return f"{described.get('error')}: {described.get('cause')}"
    reasons = [record.error or ""]
    reasons += [record.summary[k] for k in ("aborted", "note") if record.summary.get(k)]
    reasons += [f"{p.get('path')}: {p.get('reason')}" for p in (record.summary.get("failed_parts") or [])[:5]]
    return "; ".join(r for r in reasons if r) + f" (worker logs: efs-backup logs --execution {execution})"


def cmd_restore(args, out: Output) -> int:
    if args.in_place and args.target_path:
        raise CliError("--in-place restores to '/'; do not combine it with --target-path", EXIT_USAGE)
    deployment = _connect(args)
    all_runs = history.runs(deployment)
    snapshot, snapshot_id = args.snapshot, args.snapshot_id
    if not history.snapshots(deployment, all_runs) and snapshot_id is None:
        raise CliError("nothing to restore: the run history has no successful backup of "
                       f"{deployment.backup_id}", EXIT_REFUSED)
    if args.at is not None:
        row = history.snapshot_at(deployment, all_runs, restore.parse_time(args.at))
        if row is None:
            raise CliError(f"nothing to restore: no snapshot in the run history finished at or before {args.at}",
                           EXIT_REFUSED)
        out.info(f"at {args.at}: the newest snapshot then is {row['name']} of {row['finished']} "
                 f"(id {row['snapshot_id']}); the restore state machine resolves --at itself")
    if snapshot is not None:
        row = history.resolve_snapshot(deployment, all_runs, snapshot)
        if row is None:
            raise CliError(f"nothing to restore: no snapshot {snapshot} in the run history (see `efs-backup list`)",
                           EXIT_REFUSED)
        if row.get("snapshot_id"):
            out.info(f"{snapshot} is {row['name']} of {row['finished']} (id {row['snapshot_id']})")
            snapshot, snapshot_id = None, row["snapshot_id"]
    arn = deployment.output("RestoreStateMachineArn")
    stamp = executions.utc_stamp()
    name = f"restore-{stamp}"
    target = restore.target_path_for(name, args.target_path, args.in_place)
    shown_target = target or restore.default_target(name)  # the real execution's default target

    def request(dry_run: bool, pinned_id: Optional[str]) -> Dict[str, Any]:
        """The dry run asks for what the operator chose; the real run for the snapshot the dry run resolved."""
        selector = ({"snapshot_id": pinned_id} if pinned_id else {"snapshot_id": snapshot_id} if snapshot_id
                    else {"snapshot": snapshot} if snapshot else {"at": args.at})
        return restore.build_request(**selector, paths=args.paths, target_path=target,
                                     target_file_system_id=args.target_file_system, mirror=args.mirror,
                                     dry_run=dry_run, workers=args.workers)

    plan_request = request(True, None)

    def report(progress: executions.Progress, described: Dict[str, Any]) -> None:
        out.info(f"  {described['name']}: {described['status'].lower()}, workers reported {progress.reported}, "
                 f"{planner.format_bytes(progress.bytes_transferred)} transferred")

    states = executions.RESTORE_WORKER_STATES
    plan_execution = executions.start(deployment, arn, f"{name}-plan", plan_request)
    out.info(f"planning: {name}-plan")
    described = executions.wait(deployment, plan_execution, timeout=args.timeout, on_progress=report,
                                worker_states=states)
    plan_output = executions.output_of(described)
    if plan_output.get("outcome") == "already-running":
        raise executions.busy_error(plan_output.get("message"))
    if described["status"] != "SUCCEEDED":
        record = history.record(deployment, f"{name}-plan")
        raise CliError(f"the dry run {name}-plan failed: {_failure(record, f'{name}-plan', described)}",
                       _failed_exit(record))
    summary = plan_output.get("summary") or {}
    plan_text = restore.human_plan(summary, planner.format_bytes)
    document: Dict[str, Any] = {"plan_execution": f"{name}-plan", "plan": summary, "request": plan_request}
    if args.dry_run:
        out.result(document, plan_text)
        return EXIT_OK
    out.info(plan_text)
    if restore.plan_is_empty(summary) and not args.mirror:
        document["outcome"] = "nothing-to-do"
        out.result(document, "nothing to restore: the target already matches the snapshot")
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("refusing to restore without confirmation: stdin is not a terminal (pass --yes)",
                           EXIT_REFUSED)
        deletions = restore.plan_deletes(summary)
        if args.mirror and (args.in_place or deletions):
            ok = _confirm(f"{'in place ' if args.in_place else ''}WITH DELETION of {deletions:,} files and "
                          f"directories on {shown_target}: type the backup id ({deployment.backup_id}) to go on: ",
                          deployment.backup_id)
        else:
            ok = _confirm(f"restore into {shown_target}? type yes: ", "yes")
        if not ok:
            raise CliError("declined; nothing was restored", EXIT_REFUSED)
    pinned = summary.get("snapshot_id")
    if not pinned:  # never let the real run resolve the selector again: it could pick another snapshot
        raise CliError(f"the dry run {name}-plan reported no snapshot id; nothing was restored", EXIT_FAILED)
    real_request = request(False, pinned)
    document["request"] = real_request
    execution = executions.start(deployment, arn, name, real_request)
    document["execution"] = name
    document["target"] = shown_target
    out.info(f"restoring: {name} -> {shown_target}")
    if args.no_wait:
        out.result(document, execution)
        return EXIT_OK
    described = executions.wait(deployment, execution, timeout=args.timeout, on_progress=report, worker_states=states)
    result = executions.output_of(described)
    if result.get("outcome") == "already-running":
        raise executions.busy_error(result.get("message"))
    document["status"] = described["status"]
    document["summary"] = result.get("summary")
    if described["status"] != "SUCCEEDED":
        document["outcome"] = "failed"
        record = history.record(deployment, name)
        out.result(document, f"{name}: FAILED: {_failure(record, name, described)}")
        return _failed_exit(record)
    document["outcome"] = result.get("outcome", "success")
    totals = (result.get("summary") or {}).get("totals", {})
    out.result(document, f"{name}: {document['outcome']}, {totals.get('files_transferred', 0):,} files "
                         f"({planner.format_bytes(totals.get('bytes_transferred', 0))}) restored into {shown_target}")
    return EXIT_WARNINGS if document["outcome"] == "warning" else EXIT_OK


# --------------------------------------------------------------------------------------------------- logs


def cmd_logs(args, out: Output) -> int:
    deployment = _connect(args)
    execution = args.execution
    if not execution:
        machines = [deployment.output("StateMachineArn")]
        if deployment.outputs.get("RestoreStateMachineArn"):
            machines.append(deployment.outputs["RestoreStateMachineArn"])
        candidates = [e for e in (executions.newest(deployment, arn) for arn in machines) if e]
        if not candidates:
            raise CliError("no execution yet", EXIT_REFUSED)
        execution = max(candidates, key=lambda e: e["startDate"])["name"]
    names = logs.streams(deployment, execution, args.role)
    if not names:
        raise CliError(f"no worker log streams for execution {execution}"
                       f"{' and role ' + args.role if args.role else ''}", EXIT_REFUSED)
    document = {"execution": execution, "streams": []}
    for stream in names:
        entries = [{"timestamp": e["timestamp"], "message": e["message"]} for e in logs.events(deployment, stream)]
        document["streams"].append({"name": stream, "events": entries})
        if not out.as_json:
            print(f"==> {stream} <==", flush=True)
            for entry in entries:
                print(entry["message"], flush=True)
    if out.as_json:
        out.result(document, "")
    return EXIT_OK


# --------------------------------------------------------------------------------------------------- plan


def cmd_plan(args, out: Output) -> int:
    try:
        load = planner.workload(
            size=planner.parse_size(args.size) if args.size else None,
            files=planner.parse_count(args.files) if args.files else None,
            average_file_size=planner.parse_size(args.average_file_size) if args.average_file_size else None,
            daily_change=planner.parse_fraction(args.daily_change), throughput_mode=args.throughput_mode,
            provisioned_mibps=args.provisioned_mibps)
        result = planner.plan(load, planner.parse_duration(args.window))
    except planner.PlanError as error:
        raise CliError(str(error), EXIT_REFUSED) from None
    document = result.to_json()
    text = planner.human(result)
    if args.old_table:
        rows = planner.old_table_rows()
        document["old_table"] = rows
        text += "\n\nold Data Pipeline table (30 MB files, bursting, 15 min) vs this model:\n" + "\n".join(
            "  %-6s change %-6s old: %5.2f burst h left, %-14s model: %5.2f h left, %d x %s (%s, %s)" % (
                r["size"], r["daily_change"], r["old_remaining_burst_hours"], r["old_agents"],
                r["model_remaining_burst_hours"], r["model_workers"], r["model_instance_type"],
                planner.format_duration(r["model_incremental_seconds"]), r["model_bottleneck"]) for r in rows)
    out.result(document, text)
    return EXIT_OK if result.fits else EXIT_WARNINGS


COMMANDS = {"run": cmd_run, "status": cmd_status, "list": cmd_list, "restore": cmd_restore, "logs": cmd_logs,
            "plan": cmd_plan}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if exit_.code in (0, None) else EXIT_USAGE
    out = Output(args.json)
    try:
        return COMMANDS[args.command](args, out)
    except CliError as error:
        print(f"efs-backup: {error.message}", file=sys.stderr)
        return error.code
    except KeyboardInterrupt:
        print("efs-backup: interrupted (an execution already started keeps running)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `efs-backup logs | head`
        sys.stderr.close()
        return EXIT_OK
