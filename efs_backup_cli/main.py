"""efs-backup: the operator's command line for a deployed efs-backup environment.

    efs-backup [--env NAME | --stack NAME] [--region R] [--profile P] [--json] [-c key=value]... COMMAND ...

Commands: ``run``, ``follow``, ``status``, ``list``, ``restore``, ``logs``, ``plan``, ``describe`` (``--help`` on
each); ``--version`` prints the CLI's and the engine's versions. The deployment is found by environment (``--env`` or
``EFS_BACKUP_ENV``: the stack cdk.json names for it when a cdk.json is at hand, else the stack tagged
``efs-backup:environment=NAME`` or an untagged efs-backup stack named ``EfsBackup-NAME``) or by stack name (``--stack``), in ``--region`` or the AWS configuration's region
(discovery.py); every resource comes from the stack's outputs and the settings from its deployed template
(deployed.py; ``-c key=value`` replaces one). The CLI needs no checkout of the CDK app.
With ``--json`` every invocation prints exactly one JSON document on stdout, errors included
(``{"error": ..., "exit_code": N, "execution": ...}``: the execution, when one was started), and everything else
goes to stderr.

Exit codes:
    0   ok
    1   the run (backup or restore) failed, or was still running when --timeout ended the wait; ``status``: the
        last run of an interval failed
    2   succeeded with warnings (``status``: an interval never run, without a success, stale, or whose last run
        warned; ``plan``: no fleet fits the window, or the run leaves less than the safety margin)
    3   refused: invalid request, declined confirmation, no terminal to confirm on, nothing to restore, a request
        the engine refused (EngineRefused: a path not in the snapshot, an adopted snapshot, ...),
        an unused interval
    4   busy: another run of this backup-id is in progress (seen before starting: nothing was started; or outcome
        ``already-running``, or the run failed because another run holds the backup-id's lock: EngineBusy)
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
import traceback
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence

from efs_backup_contract.deployment import OUTPUT_RESTORE_STATE_MACHINE, OUTPUT_STATE_MACHINE
from efs_backup_contract.exits import ENGINE_BUSY, ENGINE_REFUSED
from efs_backup_contract.intervals import INTERVALS

from efs_backup_cli import __version__, executions, history, limits, logs, planner, progress, restore
from efs_backup_cli.discovery import PACKAGE_ROOT, connect, environment_default
from efs_backup_cli.errors import (EXIT_BUSY, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK,
                                   EXIT_REFUSED, EXIT_USAGE, EXIT_WARNINGS, CliError)

ENGINE_INIT = PACKAGE_ROOT / "assets" / "scripts" / "efs_backup_engine" / "__init__.py"


class UsageError(Exception):
    """Bad arguments (exit 64): raised by the parser instead of exiting, so --json can still answer in JSON."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    json_mode = False  # set by main() before parsing: --help answers in JSON too

    def error(self, message: str) -> None:  # argparse exits 2, which is "warnings" here
        raise UsageError(f"{self.prog}: error: {message}", self.format_usage())

    def print_help(self, file=None) -> None:
        if _Parser.json_mode:
            print(json.dumps({"help": self.format_help()}), flush=True)
        else:
            super().print_help(file)


def engine_version() -> Optional[str]:
    """ENGINE_VERSION of the engine in the checkout the CLI runs from (the one `npx cdk deploy` ships), read, not
    imported; None for an installed CLI (no engine beside it)."""
    try:
        text = ENGINE_INIT.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("ENGINE_VERSION"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return None


class _Version(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="print the CLI's and the engine's versions and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        engine = engine_version()
        if _Parser.json_mode:
            print(json.dumps({"cli": __version__, "engine": engine}), flush=True)
        else:
            print(f"efs-backup CLI {__version__}, engine {engine or 'unknown (no assets/scripts here)'}", flush=True)
        parser.exit(EXIT_OK)


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _at_most(text: str, limit: int, what: str) -> int:
    """A whole number from 1 to limit; over it, the state machine would refuse the run."""
    value = _positive_int(text)
    if value > limit:
        raise argparse.ArgumentTypeError(f"{value} is more than {limit}, the most {what} "
                                         "(the state machine would refuse it)")
    return value


def _workers(text: str) -> int:
    """1..MAX_WORKERS (efs_backup_contract.limits): what both state machines accept."""
    return _at_most(text, limits.max_workers(), "workers a run takes")


def _streams(text: str) -> int:
    """1..MAX_STREAMS_PER_WORKER (efs_backup_contract.limits): what both state machines accept."""
    return _at_most(text, limits.max_streams(), "engine streams a worker runs")


def _seconds(text: str) -> float:
    """A wait: '600', '90s', '15m', '2h' -> seconds (more than 0)."""
    try:
        value = planner.parse_duration(text, bare_unit="s")
    except planner.PlanError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be more than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    def globals_parser(suppress: bool) -> argparse.ArgumentParser:
        """The global options, accepted before and after the command (after it, only when given: argparse would
        otherwise let the subcommand's defaults overwrite values given before the command)."""
        def default(value):
            return argparse.SUPPRESS if suppress else value

        options = _Parser(add_help=False)
        options.add_argument("--env", default=default(None),
                             help="environment: the stack cdk.json names for it when there is a cdk.json, else the "
                                  "stack tagged efs-backup:environment=NAME (or an untagged efs-backup stack named "
                                  "EfsBackup-NAME) (default: $EFS_BACKUP_ENV)")
        options.add_argument("--stack", default=default(None), metavar="NAME",
                             help="the efs-backup stack by name (instead of, or to choose within, --env)")
        options.add_argument("--region", default=default(None),
                             help="the stack's region (default: cdk.json's for --env, else the AWS configuration's)")
        options.add_argument("--profile", default=default(None), help="AWS profile")
        options.add_argument("--json", action="store_true", default=default(False),
                             help="exactly one JSON document on stdout (errors included), messages on stderr")
        options.add_argument("-c", "--context", action="append", default=default([]), metavar="KEY=VALUE",
                             help="read the deployment as a redeploy with `-c KEY=VALUE` would make it (retain_*, "
                                  "schedule_*, alarm_stale_multiple, worker_count, stack_name, region; others are "
                                  "errors)")
        options.add_argument("--cdk-json", default=default(os.environ.get("EFS_BACKUP_CDK_JSON")), metavar="PATH",
                             help="a cdk.json naming the environments' stacks and regions (optional; default: the "
                                  "working directory's or above, $EFS_BACKUP_CDK_JSON)")
        return options

    def waiting(command: argparse.ArgumentParser, what: str) -> None:
        command.add_argument("--timeout", type=_seconds, default=None, metavar="DURATION",
                             help=f"stop waiting after this long (600, 90s, 15m, 2h); {what} goes on")
        command.add_argument("--progress-interval", type=_seconds, default=progress.DEFAULT_EVERY_SECONDS,
                             metavar="DURATION", help="without a terminal: a progress line at least this often "
                                                      "(default 30s); on a terminal the line refreshes in place")

    top, common = globals_parser(False), globals_parser(True)
    parser = _Parser(prog="efs-backup", description=__doc__.split("\n\n")[0], parents=[top],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", parents=[common], help="start a backup run")
    run.add_argument("--interval", required=True, choices=INTERVALS)
    run.add_argument("--workers", type=_workers, help="workers for this run (1-32; default worker_count)")
    run.add_argument("--streams", type=_streams,
                     help="engine streams per worker for this run (1-16; default worker_streams)")
    run.add_argument("--wait", action="store_true", help="follow the run to its end")
    run.add_argument("--queue", action="store_true",
                     help="if a run or restore is in progress, wait for it to end and then start (default: refuse)")
    waiting(run, "the run")

    follow = sub.add_parser("follow", parents=[common], help="follow an execution (backup or restore) to its end")
    follow.add_argument("execution", nargs="?", help="execution name (default: the newest)")
    waiting(follow, "the execution")

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
    rst.add_argument("--workers", type=_workers, help="workers for this restore (1-32; default worker_count)")
    rst.add_argument("--streams", type=_streams,
                     help="engine streams per worker for this restore (1-16; default worker_streams)")
    rst.add_argument("--no-wait", action="store_true",
                     help="start and return at once (with --dry-run: the dry run; with --yes: the restore, pinned "
                          "to the snapshot id from the run history); follow with `efs-backup follow NAME`")
    waiting(rst, "the restore")

    lg = sub.add_parser("logs", parents=[common], help="worker logs of an execution")
    pick = lg.add_mutually_exclusive_group()
    pick.add_argument("--execution", help="execution name")
    pick.add_argument("--last", action="store_true", help="the newest execution (default)")
    lg.add_argument("--role", choices=logs.ROLES)

    sub.add_parser("describe", parents=[common],
                   help="the deployment the CLI found: stack, region, outputs and the settings it read")

    pl = sub.add_parser("plan", parents=[common], help="sizing planner (no AWS access)")
    pl.add_argument("--size", help="file system size: 2TiB, 5TB, 500GB, 1,024GiB")
    pl.add_argument("--files", help="file count: 30M, 10,000,000, 250k")
    pl.add_argument("--average-file-size", help="e.g. 64KiB")
    pl.add_argument("--daily-change", required=True, help="share changed per run: 2%% or 0.02")
    pl.add_argument("--throughput-mode", required=True, choices=tuple(planner.EFS_LIMITS))
    pl.add_argument("--provisioned-mibps", type=float)
    pl.add_argument("--window", required=True, help="backup window with a unit: 4h, 90m, 1h30m, 3600s")
    pl.add_argument("--margin", default=f"{planner.SAFETY_MARGIN:.0%}",
                    help="safety margin of the window to keep free (default %(default)s); less is a warning")
    pl.add_argument("--old-table", action="store_true", help="also reproduce the old Data Pipeline sizing table")
    return parser


# --------------------------------------------------------------------------------------------------- output


class Output:
    """stdout gets the result (exactly one JSON document with --json); stderr every message and the progress.
    ``context`` collects what a failure's JSON must still carry (the execution a command started)."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.context: Dict[str, Any] = {}

    def info(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def result(self, document: Any, text: str) -> None:
        if self.as_json:
            print(json.dumps(document, sort_keys=True, default=str), flush=True)
        elif text:
            print(text, flush=True)

    def error(self, message: str, code: int, details: Dict[str, Any]) -> None:
        print(f"efs-backup: {message}", file=sys.stderr, flush=True)
        if self.as_json:
            document = dict(self.context, **details)
            document.update(error=message, exit_code=code)
            print(json.dumps(document, sort_keys=True, default=str), flush=True)

    def reporter(self, every: float) -> progress.Reporter:
        return progress.Reporter(sys.stderr, planner.format_bytes, every=every)


def _connect(args):
    return connect(args.env or (None if args.stack else environment_default()), region=args.region,
                   profile=args.profile, overrides=args.context, cdk_json=args.cdk_json, stack_name=args.stack)


def _wait(deployment, args, out: Output, arn: str, kind: str, workers: int) -> Dict[str, Any]:
    """Follow a backup or restore execution to its end (or --timeout), with the progress on stderr."""
    states = executions.RESTORE_WORKER_STATES if kind == "restore" else (executions.WORKER_STATE,)
    return executions.wait(deployment, arn, timeout=args.timeout, reporter=out.reporter(args.progress_interval),
                           worker_states=states, workers_total=workers)


def _default_workers(deployment) -> Optional[int]:
    return deployment.settings.default_workers


def _fleet(workers: Optional[int], streams: Optional[int]) -> str:
    """'2 workers x 4 streams' (streams None: a deployment before streams per worker, one each)."""
    shown = "?" if workers is None else str(workers)
    text = f"{shown} worker{'' if workers == 1 else 's'}"
    return text if streams is None else f"{text} x {streams} stream{'' if streams == 1 else 's'}"


def summary_fleet(summary: Optional[Dict[str, Any]]) -> str:
    """The fleet an engine summary (or a run-history record's JSON) says ran: '2 workers x 4 streams', or "" when it
    does not say (a run before streams per worker, a refused input)."""
    summary = summary or {}
    if not isinstance(summary.get("instances"), int) or not isinstance(summary.get("streams_per_worker"), int):
        return ""
    return _fleet(summary["instances"], summary["streams_per_worker"])


def _fleet_of(deployment, request: Dict[str, Any]) -> str:
    """The fleet of an execution's input: its workers and streams, or the deployment's defaults."""
    return _fleet(request.get("workers") or _default_workers(deployment),
                  request.get("streams") or deployment.settings.default_streams)


def _age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    return planner.format_duration(max(0.0, seconds))


def _now() -> float:
    """The time status judges ages by (one seam, so a test can look at the same history days later)."""
    return time.time()


def _utc(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _describe_running(found: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    now = time.time()
    return [{"kind": e["kind"], "name": e["name"], "started": _utc(e["startDate"]),
             "running_seconds": round(now - e["startDate"].timestamp()) if isinstance(e["startDate"], datetime)
             else None} for e in found]


def _busy(deployment, found: List[Dict[str, Any]], hint: str) -> CliError:
    running = _describe_running(found)
    first = running[0]
    others = f" (and {len(running) - 1} more)" if len(running) > 1 else ""
    return CliError(f"a {first['kind']} of backup-id {deployment.backup_id} is running: {first['name']}, started "
                    f"{first['started']} ({progress.duration(first['running_seconds'] or 0)} ago){others}; "
                    f"follow it with `efs-backup follow {first['name']}`; {hint}", EXIT_BUSY, {"running": running})


def _queue_behind(deployment, found, args, out: Output) -> None:
    """--queue: wait until no execution of either state machine runs (every --progress-interval a line)."""
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    last_line = 0.0
    while found:
        now = time.monotonic()
        if now - last_line >= args.progress_interval or not last_line:
            current = _describe_running(found)[0]
            out.info(f"  queued: waiting for {current['kind']} {current['name']} (running "
                     f"{progress.duration(current['running_seconds'] or 0)}) to end")
            last_line = now
        if deadline is not None and now > deadline:
            raise _busy(deployment, found, f"still running after {args.timeout:.0f} s of --queue; nothing was "
                                           "started")
        time.sleep(executions.POLL_SECONDS)
        found = executions.running_anywhere(deployment)


# --------------------------------------------------------------------------------------------------- run / follow


def cmd_run(args, out: Output) -> int:
    deployment = _connect(args)
    retain = deployment.retain(args.interval)
    if retain < 1:
        used = ", ".join(deployment.used_intervals())
        raise CliError(f"interval {args.interval} is not used in environment {deployment.environment or '?'} "
                       f"(retain_{args.interval} is 0); used: {used}", EXIT_REFUSED)
    arn = deployment.output(OUTPUT_STATE_MACHINE)
    payload: Dict[str, Any] = {"interval": args.interval}  # retention is part of the deployment
    if args.workers:
        payload["workers"] = args.workers
    if args.streams:
        payload["streams"] = args.streams
    total = payload.get("workers") or _default_workers(deployment)
    found = executions.running_anywhere(deployment)
    if found and not args.queue:
        raise _busy(deployment, found, "pass --queue to start this run when it ends; nothing was started")
    if found:
        _queue_behind(deployment, found, args, out)
    name = f"manual-{args.interval}-{executions.utc_stamp()}"
    execution = executions.start(deployment, arn, name, payload)
    out.context.update(execution=name, execution_arn=execution)
    out.info(f"started {name} ({args.interval}, {_fleet_of(deployment, payload)})")
    if not args.wait:
        out.info(f"follow it with `efs-backup follow {name}`")
        out.result({"execution": name, "execution_arn": execution, "input": payload}, execution)
        return EXIT_OK
    described = _wait(deployment, args, out, execution, "backup", total)
    return _backup_result(deployment, name, execution, described, out)


def _backup_result(deployment, name: str, execution: str, described: Dict[str, Any], out: Output) -> int:
    """The outcome of a finished backup execution: one line (or the document) and its exit code."""
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
        lines.append(f"  worker logs: efs-backup logs --execution {name}")
        out.result(document, "\n".join(lines))
        return _failed_exit(record)
    totals = summary.get("totals", {})
    took = ""
    if isinstance(described.get("stopDate"), datetime) and isinstance(described.get("startDate"), datetime):
        took = f" in {progress.duration((described['stopDate'] - described['startDate']).total_seconds())}"
    text = (f"{name}: {outcome['outcome']} -> {summary.get('snapshot')} (id {summary.get('snapshot_id')}){took}: "
            f"{_count(summary.get('parts', 0), 'part')}, {_count(totals.get('files_scanned', 0), 'file')} scanned, "
            f"{_count(totals.get('files_transferred', 0), 'file')} transferred "
            f"({planner.format_bytes(totals.get('bytes_transferred', 0))}), "
            f"{_count(summary.get('warnings', 0), 'warning')}; the engine ran "
            f"{progress.duration(summary.get('duration_seconds', 0))}"
            + (f" on {summary_fleet(summary)}" if summary_fleet(summary) else ""))
    out.result(document, text)
    return EXIT_WARNINGS if outcome["outcome"] == "warning" else EXIT_OK


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def _input_of(described: Dict[str, Any]) -> Dict[str, Any]:
    try:
        value = json.loads(described.get("input") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _newest_execution_name(deployment) -> str:
    """The newest execution of either state machine (backup or restore), by start time."""
    candidates = [e for e in (executions.newest(deployment, arn)
                              for arn in executions.machines(deployment).values()) if e]
    if not candidates:
        raise CliError("no execution yet", EXIT_REFUSED)
    return max(candidates, key=lambda e: e["startDate"])["name"]


def cmd_follow(args, out: Output) -> int:
    deployment = _connect(args)
    name = args.execution or _newest_execution_name(deployment)
    found = executions.find(deployment, name)
    if found is None:
        raise CliError(f"no execution {name} in the backup or restore state machine of stack "
                       f"{deployment.stack_name} (`efs-backup status` shows the running ones)", EXIT_REFUSED)
    kind, arn, described = found
    out.context.update(execution=name, execution_arn=arn)
    request = _input_of(described)
    total = request.get("workers") or _default_workers(deployment)
    out.info(f"following {kind} {name} ({_fleet_of(deployment, request)}, started {_utc(described['startDate'])})")
    described = _wait(deployment, args, out, arn, kind, total)
    if kind == "backup":
        return _backup_result(deployment, name, arn, described, out)
    return _restore_result(deployment, name, described, request, out)


# --------------------------------------------------------------------------------------------------- status / list


def _freshness(deployment, interval: str, mine: List[history.Run], now: float) -> Dict[str, Any]:
    """never-run (no run at all), no-success (runs, none successful), stale (a scheduled interval whose newest
    snapshot is older than alarm_stale_multiple x the interval, as the stale alarm judges it), manual (unscheduled:
    no staleness), or fresh."""
    schedule = deployment.settings.schedules.get(interval)
    limit = deployment.settings.stale_after.get(interval)
    good = next((r for r in mine if r.status in history.SUCCESS), None)
    age = history.age_seconds(good, now) if good else None
    if not mine:
        state = "never-run"
    elif good is None:
        state = "no-success"
    elif limit is None:
        state = "manual"
    elif age is None or age > limit:
        state = "stale"
    else:
        state = "fresh"
    return {"freshness": state, "stale": state == "stale", "newest": good, "newest_age_seconds": age,
            "stale_after_seconds": limit, "schedule": schedule}


def _freshness_text(entry: Dict[str, Any], multiple: float) -> str:
    state = entry["freshness"]
    if state == "never-run":
        return "never run: no snapshot yet"
    if state == "no-success":
        return "no successful run yet: no snapshot"
    text = f"newest snapshot {_age(entry['newest_age_seconds'])} old"
    if state == "stale":
        text += (f"  STALE (older than {multiple:g} x the interval = {_age(entry['stale_after_seconds'])}, "
                 "alarm_stale_multiple)")
    elif state == "manual":
        text += " (no schedule: not checked for staleness)"
    return text


def cmd_status(args, out: Output) -> int:
    deployment = _connect(args)
    running = _describe_running(executions.running_anywhere(deployment))
    backup_runs = history.backups(history.runs(deployment))
    intervals = []
    code = EXIT_OK
    now = _now()
    for interval in deployment.used_intervals():
        mine = [r for r in backup_runs if r.interval == interval]
        last = mine[0] if mine else None
        fresh = _freshness(deployment, interval, mine, now)
        good = fresh.pop("newest")
        entry = {"interval": interval, "retain": deployment.retain(interval),
                 "last": last.to_json() if last else None, "newest_snapshot": good.to_json() if good else None,
                 **fresh,
                 "last_warnings": (last.summary.get("warning_parts") or []) if last else [],
                 "last_failed_parts": (last.summary.get("failed_parts") or []) if last else []}
        intervals.append(entry)
        if last and last.status == "failed":
            code = EXIT_FAILED
        elif (fresh["freshness"] in ("never-run", "no-success", "stale") or (last and last.status == "warning")) \
                and code == EXIT_OK:
            code = EXIT_WARNINGS
    multiple = deployment.settings.stale_multiple
    lines = [f"efs-backup {deployment.environment or '?'}: stack {deployment.stack_name} ({deployment.region}), "
             f"backup-id {deployment.backup_id}"]
    lines.append("running: " + (", ".join(f"{r['kind']} {r['name']} (since {r['started']})" for r in running)
                                if running else "none"))
    for entry in intervals:
        last = entry["last"]
        fleet = summary_fleet(last)
        said = f"last {last['status']} ({last['execution']}{', ' + fleet if fleet else ''}); " if last else ""
        lines.append(f"  {entry['interval']:<8} {said}{_freshness_text(entry, multiple)}")
        for part in entry["last_warnings"][:5]:
            lines.append(f"      warning {part.get('path')}: {' | '.join(part.get('messages') or [])}")
        for part in entry["last_failed_parts"][:5]:
            lines.append(f"      failed {part.get('path')}: {part.get('reason')}")
        if last and last.get("error"):
            lines.append(f"      error: {last['error']}")
    out.result({"environment": deployment.environment, "stack": deployment.stack_name,
                "region": deployment.region, "backup_id": deployment.backup_id, "running": running,
                "stale_multiple": multiple, "intervals": intervals}, "\n".join(lines))
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


def error_names(error: Any) -> List[str]:
    """The error names in a run-history ``error``: the ``Error`` of the JSON object the state machine recorded
    (``States.JsonToString($.error)``), and of any error object nested in it or in its ``Cause`` (a Map or task
    failure carries the worker's error there); a plain string is itself the name. Names, never substrings."""
    if isinstance(error, str):
        try:
            parsed = json.loads(error)
        except ValueError:
            return [error.strip()] if error.strip() else []
        return error_names(parsed) if isinstance(parsed, (dict, list)) else [error.strip()]
    names: List[str] = []
    if isinstance(error, dict):
        if isinstance(error.get("Error"), str):
            names.append(error["Error"])
        for key, value in error.items():
            nested = isinstance(value, (dict, list)) and key != "Error"
            encoded = key == "Cause" and isinstance(value, str) and value.lstrip().startswith(("{", "["))
            if nested or encoded:
                names.extend(error_names(value))
    elif isinstance(error, list):
        for value in error:
            names.extend(error_names(value))
    return names


def _failed_exit(record: Optional[history.Run]) -> int:
    """The exit code of a failed run, from the error name its workers reported (efs_backup_contract.exits):
    another run holds the backup-id's lock (EngineBusy) is busy (4, like already-running); a precondition the
    engine refused (EngineRefused: a path not in the snapshot, an adopted snapshot, ...) is refused (3); anything
    else failed (1)."""
    names = error_names(record.error if record is not None else None)
    if ENGINE_BUSY in names:
        return EXIT_BUSY
    return EXIT_REFUSED if ENGINE_REFUSED in names else EXIT_FAILED


def _failure(record: Optional[history.Run], execution: str, described: Dict[str, Any]) -> str:
    """Why an execution failed: the run-history record's error and the engine's reason, else the execution's."""
    if record is None:
        return f"{described.get('error')}: {described.get('cause')}"
    reasons = [record.error or ""]
    reasons += [record.summary[k] for k in ("aborted", "note") if record.summary.get(k)]
    reasons += [f"{p.get('path')}: {p.get('reason')}" for p in (record.summary.get("failed_parts") or [])[:5]]
    return "; ".join(r for r in reasons if r) + f" (worker logs: efs-backup logs --execution {execution})"


def _restore_result(deployment, name: str, described: Dict[str, Any], request: Dict[str, Any], out: Output,
                    document: Optional[Dict[str, Any]] = None) -> int:
    """The outcome of a finished restore execution (a dry run: its plan)."""
    document = dict(document or {}, execution=name, request=request, status=described["status"])
    result = executions.output_of(described)
    if result.get("outcome") == "already-running":
        raise executions.busy_error(result.get("message"))
    summary = result.get("summary") or {}
    document["summary"] = summary
    if described["status"] != "SUCCEEDED":
        document["outcome"] = "failed"
        record = history.record(deployment, name)
        out.result(document, f"{name}: FAILED: {_failure(record, name, described)}")
        return _failed_exit(record)
    document["outcome"] = result.get("outcome", "success")
    target = document.get("target") or restore.logical_target(name, request)
    if request.get("dry_run"):
        document["plan"] = summary
        out.result(document, restore.human_plan(summary, planner.format_bytes, target))
        return EXIT_OK
    totals = summary.get("totals", {})
    out.result(document, f"{name}: {document['outcome']}, {_count(totals.get('files_transferred', 0), 'file')} "
                         f"({planner.format_bytes(totals.get('bytes_transferred', 0))}) restored into {target}")
    return EXIT_WARNINGS if document["outcome"] == "warning" else EXIT_OK


def _check_target_file_system(deployment, file_system_id: Optional[str]) -> None:
    """A restore writes to production or to a file system of restore_target_file_systems, nothing else."""
    if file_system_id is None:
        return
    settings = deployment.settings
    if file_system_id not in settings.writable_file_systems:
        raise CliError(f"--target-file-system {file_system_id} is neither production "
                       f"({settings.source_file_system_id}) nor in restore_target_file_systems of environment "
                       f"{deployment.environment or '?'} ({', '.join(settings.restore_targets) or 'none configured'}); the "
                       "restore workers may write only to those", EXIT_REFUSED)


def _chosen_snapshot(deployment, all_runs, args, out: Output) -> Dict[str, Any]:
    """The run-history row of the snapshot the operator chose; refused (exit 3) when the history has none."""
    if not history.snapshots(deployment, all_runs):
        raise CliError("nothing to restore: the run history has no successful backup of "
                       f"{deployment.backup_id}", EXIT_REFUSED)
    if args.snapshot_id is not None:
        row = next((r for r in history.snapshots(deployment, all_runs) if r["snapshot_id"] == args.snapshot_id),
                   None)
        if row is None:
            gone = next((r for r in history.backups(all_runs) if r.summary.get("snapshot_id") == args.snapshot_id),
                        None)
            if gone is not None:
                raise CliError(f"snapshot id {args.snapshot_id} ({gone.interval}, run {gone.execution}) has expired: "
                               f"it is beyond retain_{gone.interval} = {deployment.retain(gone.interval)}; "
                               "`efs-backup list` shows what is kept", EXIT_REFUSED)
            raise CliError(f"no snapshot with id {args.snapshot_id} in the run history of backup-id "
                           f"{deployment.backup_id} (`efs-backup list` shows the ids); nothing was started. A snapshot "
                           "made outside the orchestration is restored with the engine (docs/restore.md, "
                           "\"Restore with the engine\")", EXIT_REFUSED)
        out.info(f"id {args.snapshot_id} is {row['name']}, finished {row['finished']}")
        return row
    if args.at is not None:
        row = history.snapshot_at(deployment, all_runs, restore.parse_time(args.at))
        if row is None:
            raise CliError(f"nothing to restore: no snapshot in the run history finished at or before {args.at}",
                           EXIT_REFUSED)
        out.info(f"at {args.at}: the newest snapshot then is {row['name']} of {row['finished']} "
                 f"(id {row['snapshot_id']}); the restore state machine resolves --at itself")
        return row
    row = history.resolve_snapshot(deployment, all_runs, args.snapshot)
    if row is None:
        raise CliError(f"nothing to restore: no snapshot {args.snapshot} in the run history (see `efs-backup list`)",
                       EXIT_REFUSED)
    label = row["name"] if args.snapshot == row["name"] else f"{args.snapshot} is {row['name']}"
    out.info(f"{label}: finished {row['finished']}, id {row['snapshot_id']}")
    return row


def cmd_restore(args, out: Output) -> int:
    if args.in_place and args.target_path:
        raise CliError("--in-place restores to '/'; do not combine it with --target-path", EXIT_USAGE)
    if args.no_wait and not (args.yes or args.dry_run):
        raise CliError("--no-wait cannot wait for your confirmation: add --yes (the restore starts at once, pinned to "
                       "the snapshot id) or --dry-run (the dry run starts), or drop --no-wait", EXIT_USAGE)
    if args.no_wait and args.mirror and not args.dry_run:
        raise CliError("a --mirror restore deletes: the CLI shows its plan before it starts, so it waits; drop "
                       "--no-wait (--timeout bounds the wait)", EXIT_USAGE)
    stamp = executions.utc_stamp()
    name = f"restore-{stamp}"
    target = restore.target_path_for(name, args.target_path, args.in_place)
    # [<file system>:]<path>; the default is the real execution's /efs-backup-restore/<name>
    shown_target = restore.logical_target(name, {"target_path": target,
                                                 "target_file_system_id": args.target_file_system})

    def request(dry_run: bool, pinned_id: Optional[str], snapshot=args.snapshot, snapshot_id=args.snapshot_id):
        """The dry run asks for what the operator chose; the real run for the snapshot the dry run resolved."""
        selector = ({"snapshot_id": pinned_id} if pinned_id else {"snapshot_id": snapshot_id} if snapshot_id
                    else {"snapshot": snapshot} if snapshot else {"at": args.at})
        return restore.build_request(**selector, paths=args.paths, target_path=target,
                                     target_file_system_id=args.target_file_system, mirror=args.mirror,
                                     dry_run=dry_run, workers=args.workers, streams=args.streams)

    request(True, None)  # every argument checked before anything is read or started
    deployment = _connect(args)
    _check_target_file_system(deployment, args.target_file_system)
    arn = deployment.output(OUTPUT_RESTORE_STATE_MACHINE)
    row = _chosen_snapshot(deployment, history.runs(deployment), args, out)
    snapshot, snapshot_id = args.snapshot, args.snapshot_id
    if snapshot is not None and row.get("snapshot_id"):
        snapshot, snapshot_id = None, row["snapshot_id"]
    found = executions.running_anywhere(deployment)
    if found:
        raise _busy(deployment, found, "a restore needs the backup-id's lock: start it when that run ended; nothing "
                                       "was started")
    total = args.workers or _default_workers(deployment)

    if args.no_wait and not args.dry_run:  # --yes --no-wait: no plan to wait for; pinned to the history's id
        if not row.get("snapshot_id"):
            raise CliError(f"{row['name']} has no snapshot id in the run history, so it cannot be pinned without "
                           "the dry run; drop --no-wait", EXIT_REFUSED)
        real_request = request(False, row["snapshot_id"])
        execution = executions.start(deployment, arn, name, real_request)
        out.context.update(execution=name, execution_arn=execution)
        out.info(f"restoring: {name} -> {shown_target} (snapshot {row['name']}, id {row['snapshot_id']}); follow "
                 f"it with `efs-backup follow {name}` (its outcome includes what it restored)")
        out.result({"execution": name, "execution_arn": execution, "request": real_request, "target": shown_target},
                   execution)
        return EXIT_OK

    plan_request = request(True, None, snapshot, snapshot_id)
    plan_name = f"{name}-plan"
    plan_execution = executions.start(deployment, arn, plan_name, plan_request)
    out.context.update(plan_execution=plan_name, execution_arn=plan_execution)
    if args.no_wait:  # --dry-run --no-wait
        out.info(f"planning: {plan_name}; see the plan with `efs-backup follow {plan_name}`")
        out.result({"plan_execution": plan_name, "execution_arn": plan_execution, "request": plan_request},
                   plan_execution)
        return EXIT_OK
    out.info(f"planning: {plan_name}")
    described = _wait(deployment, args, out, plan_execution, "restore", total)
    plan_output = executions.output_of(described)
    if plan_output.get("outcome") == "already-running":
        raise executions.busy_error(plan_output.get("message"))
    if described["status"] != "SUCCEEDED":
        record = history.record(deployment, plan_name)
        raise CliError(f"the dry run {plan_name} failed: {_failure(record, plan_name, described)}",
                       _failed_exit(record))
    summary = plan_output.get("summary") or {}
    plan_text = restore.human_plan(summary, planner.format_bytes, shown_target)
    document: Dict[str, Any] = {"plan_execution": plan_name, "plan": summary, "request": plan_request}
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
        raise CliError(f"the dry run {plan_name} reported no snapshot id; nothing was restored", EXIT_FAILED)
    real_request = request(False, pinned)
    execution = executions.start(deployment, arn, name, real_request)
    out.context.update(execution=name, execution_arn=execution)
    document.update(execution=name, target=shown_target)
    out.info(f"restoring: {name} -> {shown_target}")
    described = _wait(deployment, args, out, execution, "restore", total)
    return _restore_result(deployment, name, described, real_request, out, document)


# --------------------------------------------------------------------------------------------------- logs


def cmd_logs(args, out: Output) -> int:
    deployment = _connect(args)
    execution = args.execution
    if not execution:
        execution = _newest_execution_name(deployment)
    else:
        found = executions.find(deployment, execution)
        if found is None:
            raise CliError(f"no execution {execution} in the backup or restore state machine of stack "
                           f"{deployment.stack_name} (`efs-backup status` shows running ones, `efs-backup list` the "
                           "runs behind each snapshot)", EXIT_REFUSED)
    names = logs.streams(deployment, execution, args.role)
    if not names:
        raise CliError(f"execution {execution} has no worker log streams"
                       f"{' of role ' + args.role if args.role else ''} (yet: workers ship their log within a "
                       "minute of starting)", EXIT_REFUSED)
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
        margin = planner.parse_fraction(args.margin, what="--margin")
        if margin >= 1:
            raise planner.PlanError(f"--margin {args.margin}: must be less than 100%")
        result = planner.plan(load, planner.parse_duration(args.window), margin=margin)
    except planner.PlanError as error:
        raise CliError(str(error), EXIT_REFUSED) from None
    document = result.to_json()
    text = planner.human(result)
    if args.old_table:
        rows = planner.old_table_rows()
        document["old_table"] = rows
        text += "\n\nold Data Pipeline table (30 MB files, bursting, 15 min) vs this model:\n" + "\n".join(
            "  %-6s change %-6s old: %5.2f burst h left, %-14s model: %5.2f h left, %d x %s x %d streams (%s, %s)"
            % (r["size"], r["daily_change"], r["old_remaining_burst_hours"], r["old_agents"],
               r["model_remaining_burst_hours"], r["model_workers"], r["model_instance_type"], r["model_streams"],
               planner.format_duration(r["model_incremental_seconds"]), r["model_bottleneck"]) for r in rows)
    out.result(document, text)
    return EXIT_OK if result.fits and not result.warnings else EXIT_WARNINGS


def cmd_describe(args, out: Output) -> int:
    deployment = _connect(args)
    document = deployment.to_json()
    settings = deployment.settings
    lines = [f"stack {deployment.stack_name} ({deployment.region}, {deployment.stack_status}), environment "
             f"{deployment.environment or '?'}, backup-id {deployment.backup_id}"]
    for interval in INTERVALS:
        retain = settings.retain[interval]
        if retain:
            stale = settings.stale_after[interval]
            lines.append(f"  {interval:<8} retain {retain}, schedule {settings.schedules[interval] or 'none'}"
                         + (f", stale after {_age(stale)}" if stale else ""))
    lines.append(f"  {_fleet(settings.default_workers, settings.default_streams)} by default; restores may write to "
                 f"{', '.join(settings.writable_file_systems) or '?'}")
    lines += [f"  {key}: {value}" for key, value in sorted(deployment.outputs.items())]
    out.result(document, "\n".join(lines))
    return EXIT_OK


COMMANDS = {"run": cmd_run, "follow": cmd_follow, "status": cmd_status, "list": cmd_list, "restore": cmd_restore,
            "logs": cmd_logs, "plan": cmd_plan, "describe": cmd_describe}


def _wants_json(argv: Sequence[str]) -> bool:
    """--json anywhere before a lone '--' (known before parsing, so even a usage error answers in JSON)."""
    words = list(argv)
    return "--json" in (words[:words.index("--")] if "--" in words else words)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    out = Output(_wants_json(argv))
    _Parser.json_mode = out.as_json
    parser = build_parser()
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit_:  # --help, --version
            return int(exit_.code or 0) if exit_.code in (0, None) else EXIT_USAGE
        except UsageError as error:  # as argparse says it: the usage, then "<prog>: error: <message>"
            print(error.usage + error.message, file=sys.stderr, flush=True)
            if out.as_json:
                print(json.dumps({"error": error.message, "exit_code": EXIT_USAGE, "usage": error.usage.strip()},
                                 sort_keys=True), flush=True)
            return EXIT_USAGE
        return COMMANDS[args.command](args, out)
    except CliError as error:
        out.error(error.message, error.code, error.details)
        return error.code
    except KeyboardInterrupt:
        out.error("interrupted (an execution already started keeps running)", EXIT_INTERRUPTED, {})
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `efs-backup logs | head`
        sys.stderr.close()
        return EXIT_OK
    except Exception as error:  # a defect: the traceback on stderr; with --json still one document
        traceback.print_exc()
        out.error(f"internal error: {type(error).__name__}: {error}", EXIT_FAILED, {})
        return EXIT_FAILED
    finally:
        _Parser.json_mode = False
