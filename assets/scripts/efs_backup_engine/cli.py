"""Command line of the engine: the local runner (`backup`, `list`, `verify`) and the steps workers run.

    efs-backup-engine init      --backup-root DIR
    efs-backup-engine backup    --source DIR --backup-root DIR --id ID --interval daily --retain N --workers K
    efs-backup-engine list      --backup-root DIR --id ID
    efs-backup-engine verify    --source DIR --backup-root DIR --id ID [--snapshot daily.0] [--checksum sample]
    efs-backup-engine unlock    --backup-root DIR --id ID [--force]
    efs-backup-engine prepare | work | finalize | abort   (the steps `backup` runs; used by the EC2 workers)
                                [prepare: --workers W x S --streams-per-worker S; work: --streams S]
    efs-backup-engine restore   --backup-root DIR --id ID --target DIR (--snapshot daily.3|latest|id:ID | --at TIME)
                                [--path REL]... [--mirror] [--dry-run] [--workers K] [--state-dir DIR]
    efs-backup-engine restore-prepare | restore-work | restore-finalize | restore-abort   (the steps of `restore`;
                                the same --streams-per-worker and --streams as prepare and work)
    efs-backup-engine bound-report --max-bytes N [--note TEXT] < report.json   (a report cut to fit a message)

Exit codes: 0 success, 2 success with warnings, 1 failed (nothing promoted), 3 refused (precondition: wrong
or unmounted file system, bad argument; nothing touched), 4 another run holds the lock, 64 usage.

Streams: `work --streams S` (and `restore-work --streams S`) runs S claim loops on this machine, each an engine
process `work ... --worker-id <id>-s<j>` (the local runner's workers are started the same way, see _fan_out), and
prints one report for all of them. Each stream dies with the process that started it (Linux PR_SET_PDEATHSIG), so
a worker whose engine is killed leaves no stream behind.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

from efs_backup_contract.exits import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_WARNINGS
from efs_backup_contract.intervals import INTERVALS
from efs_backup_contract.limits import MAX_STREAMS_PER_WORKER
from efs_backup_engine import bounded, child_env, preflight, run as runs, summary as summaries
from efs_backup_engine.errors import EngineError, Refused
from efs_backup_engine.fsutil import read_json
from efs_backup_engine.layout import Layout
from efs_backup_engine.lock import Heartbeat, ProgressProbe, RunLock, describe_owner
from efs_backup_engine.state import DEFAULT_RESUME_MAX_AGE, BackupRequest, RestoreRequest

# Set in the environment of the engine processes _fan_out starts: the pid of the process that started them (see
# _die_with_parent).
PARENT_ENV = "EFS_BACKUP_ENGINE_PARENT"
# A worker id is recorded in claims, results and summaries and names a stream's id (<id>-s<j>): letters, digits,
# ".", "_" and "-", starting with a letter or digit, so it is safe in a file name and on a command line.
WORKER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Exit codes from best to worst, as the module docstring lists them; any other code (a stream killed by a signal,
# a crash) is worse than all of them. Streams' exits combine to the worst.
EXIT_ORDER = (EXIT_OK, EXIT_WARNINGS, EXIT_FAILED, EXIT_REFUSED, EXIT_BUSY, EXIT_USAGE)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not an integer" % text)
    if value < 1:
        raise argparse.ArgumentTypeError("%r must be >= 1" % text)
    return value


def _streams(text):
    value = _positive_int(text)
    if value > MAX_STREAMS_PER_WORKER:
        raise argparse.ArgumentTypeError("%r is more than %d" % (text, MAX_STREAMS_PER_WORKER))
    return value


def _worker_id(text):
    if not WORKER_ID_RE.fullmatch(text):
        raise argparse.ArgumentTypeError("%r is not a worker id (1-64 of letters, digits, '.', '_', '-', starting "
                                         "with a letter or digit)" % text)
    return text


def _streams_per_worker_option(parser):
    parser.add_argument("--streams-per-worker", type=_streams, default=1, metavar="S",
                        help="streams each worker machine runs (1-%d, default 1): --workers counts streams in "
                             "all (machines x S) and must be a multiple of S; recorded for the run summary"
                             % MAX_STREAMS_PER_WORKER)


def _work_options(parser):
    parser.add_argument("--worker-id", required=True, type=_worker_id)
    parser.add_argument("--streams", type=_streams, default=1, metavar="S",
                        help="claim loops this worker runs, each an engine process with worker id <id>-s<j> "
                             "(1-%d, default 1); one report for all" % MAX_STREAMS_PER_WORKER)


def _common(parser, source=False, interval=False):
    parser.add_argument("--backup-root", required=True, help="root of the backup file system (mounted)")
    parser.add_argument("--id", dest="backup_id", required=True, help="backup id: the directory under the root")
    if source:
        parser.add_argument("--source", required=True, help="the tree to back up (production FS mount point)")
    if interval:
        parser.add_argument("--interval", required=True, choices=INTERVALS)


def _run_options(parser):
    parser.add_argument("--retain", type=_positive_int, required=True, help="snapshots to keep for this interval")
    parser.add_argument("--workers", type=_positive_int, default=1, help="parallel workers (default 1)")
    parser.add_argument("--require-mountpoint", action="store_true",
                        help="refuse unless --source is a mount point (the EC2 workers always set this)")
    parser.add_argument("--allow-empty-source", action="store_true",
                        help="accept an empty source even though the newest snapshot is not empty")
    parser.add_argument("--part-files", "--unit-files", dest="part_files", type=_positive_int, default=None,
                        help="split directories holding more entries than this into separate parts "
                             "(default: the tree's entry count / (workers x 16), within 200..50000; one part for a single worker; "
                             "--unit-files is its older name)")
    parser.add_argument("--resume-max-age", type=int, default=DEFAULT_RESUME_MAX_AGE, metavar="SECONDS",
                        help="an interrupted run younger than this is resumed keeping its finished parts (those "
                             "parts then show the source as it was then); older, or 0: every part is synced again, "
                             "still reusing the work tree (default 86400)")
    parser.add_argument("--stale-after", type=_positive_int, default=None,
                        help="seconds without heartbeat after which another host's lock is stale (default 600)")


def _restores():
    """restore.py, imported by the commands that use it: a backup's processes (thousands of short ones in a run of
    the test suite, several per worker) never load it."""
    from efs_backup_engine import restore

    return restore


def _iso_time(text):
    try:
        return _restores().parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("%r is not an ISO 8601 time with a time zone (e.g. 2026-11-20T00:00:00Z): %s"
                                         % (text, exc))


def _restore_common(parser):
    _common(parser)
    parser.add_argument("--state-dir", default=None,
                        help="the backup-id's state directory, if mounted elsewhere read-write while the backup "
                             "root is read-only (default: <backup-root>/<id>/.efs-backup)")
    parser.add_argument("--require-mountpoint", action="store_true",
                        help="refuse unless --backup-root is a mount point and the target is on another device")


def _restore_options(parser):
    _restore_common(parser)
    parser.add_argument("--target", required=True, help="directory to restore into (created if missing; its "
                                                       "parent must exist)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--snapshot", help="daily.3 (a name), latest (newest of any interval) or id:<snapshot_id>")
    which.add_argument("--at", type=_iso_time, help="the newest snapshot finished at or before this time "
                                                    "(ISO 8601 with Z or an offset)")
    parser.add_argument("--path", dest="paths", action="append", default=[], metavar="REL",
                        help="restore only this path of the snapshot (relative; repeatable) to <target>/<path>")
    parser.add_argument("--mirror", action="store_true",
                        help="make each restored path exactly the snapshot's: deletes extras inside it and "
                             "overwrites newer files (default: safe, never deletes, keeps newer files)")
    parser.add_argument("--dry-run", action="store_true", help="change nothing; report what would be done")
    parser.add_argument("--workers", type=_positive_int, default=1, help="parallel workers (default 1)")
    parser.add_argument("--part-files", "--unit-files", dest="part_files", type=_positive_int, default=None,
                        help="split directories holding more entries than this into separate parts (as backups; "
                             "--unit-files is its older name)")
    parser.add_argument("--stale-after", type=_positive_int, default=None,
                        help="seconds without heartbeat after which another host's lock is stale (default 600)")


def build_parser():
    parser = argparse.ArgumentParser(prog="efs-backup-engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="mark a directory as an efs-backup root (once per backup file system)")
    p.add_argument("--backup-root", required=True)

    p = sub.add_parser("backup", help="run a whole backup here: prepare, K local workers, finalize")
    _common(p, source=True, interval=True)
    _run_options(p)
    p.add_argument("--verify", choices=("none", "sample", "full"), default="none",
                   help="compare the new snapshot with the source before promoting it")
    p.add_argument("--json", action="store_true", help="print the run summary as one JSON line at the end")
    p.add_argument("--quiet", action="store_true", help="no progress lines")

    p = sub.add_parser("prepare", help="step 1: checks, lock, work tree and part plan")
    _common(p, source=True, interval=True)
    _run_options(p)
    _streams_per_worker_option(p)
    p.add_argument("--run-id", default=None, help="run id (default: generated)")

    p = sub.add_parser("work", help="step 2: claim and sync parts until none is left (run on each worker)")
    _common(p, interval=True)
    p.add_argument("--source", default=None, help="source mount point (default: the one given to prepare)")
    _work_options(p)
    p.add_argument("--require-mountpoint", action="store_true")

    p = sub.add_parser("finalize", help="step 3: promote and rotate if every part succeeded")
    _common(p, interval=True)
    p.add_argument("--run-id", default=None)
    p.add_argument("--verify", choices=("none", "sample", "full"), default="none")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("abort", help="failure path: record the run as failed (failed and unfinished parts, "
                                      "reason), release the lock, keep the work for the next run; exit 0 once done")
    _common(p, interval=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--reason", default=None, help="why the run is aborted (recorded in the failure summary)")
    p.add_argument("--json", action="store_true", help="print the failure summary as one JSON line at the end")

    p = sub.add_parser("list", help="snapshots with their manifests, the lock, unfinished runs")
    _common(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("verify", help="compare a snapshot with the source")
    _common(p, source=True)
    p.add_argument("--snapshot", default=None, help="snapshot name, e.g. daily.0 (default: newest daily, "
                                                    "else the newest of any interval)")
    p.add_argument("--checksum", choices=("none", "sample", "full"), default="sample")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("restore", help="restore a snapshot (or paths of it) into a directory: restore-prepare, K "
                                       "local workers, restore-finalize")
    _restore_options(p)
    p.add_argument("--json", action="store_true", help="print the restore summary as one JSON line at the end")
    p.add_argument("--quiet", action="store_true", help="no progress lines")

    p = sub.add_parser("restore-prepare", help="restore step 1: checks, lock, snapshot, part plan (every worker "
                                               "calls it with the same --run-id; the first sets the run up)")
    _restore_options(p)
    _streams_per_worker_option(p)
    p.add_argument("--run-id", default=None, help="run id (default: generated)")

    p = sub.add_parser("restore-work", help="restore step 2: claim and restore parts until none is left")
    _restore_common(p)
    _work_options(p)
    p.add_argument("--run-id", default=None, help="default: the restore run holding the lock")
    p.add_argument("--target", default=None,
                   help="this worker's view of the target (default: the one given to restore-prepare); the "
                        "snapshot is always read under this worker's own --backup-root")

    p = sub.add_parser("restore-finalize", help="restore step 3: record the summary, release the lock")
    _restore_common(p)
    p.add_argument("--run-id", required=True)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("restore-abort", help="restore failure path: record the run as failed, release the lock; "
                                             "exit 0 once done")
    _restore_common(p)
    p.add_argument("--run-id", required=True)
    p.add_argument("--reason", default=None, help="why the run is aborted (recorded in the failure summary)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("bound-report", help="read one JSON report on stdin, print it cut down to --max-bytes "
                                             "(see bounded.py): what a worker hands to Step Functions")
    p.add_argument("--max-bytes", type=_positive_int, required=True)
    p.add_argument("--note", default=None, help="where the full report is (kept in the bounded one)")

    p = sub.add_parser("unlock", help="show the lock; with --force, break it (only when no run is alive!)")
    _common(p)
    p.add_argument("--force", action="store_true")
    return parser


def _exit_for(status):
    return {"success": EXIT_OK, "warning": EXIT_WARNINGS}.get(status, EXIT_FAILED)


def _progress_printer(store_dir, started, stop, quiet):
    from efs_backup_engine.parts import PartStore

    store = PartStore(store_dir)
    while not stop.wait(2.0):
        if quiet:
            continue
        try:
            parts, results = store.parts(), store.results()
        except OSError:
            continue
        files = sum(r.get("files_scanned", 0) for r in results.values())
        moved = sum(r.get("bytes_transferred", 0) for r in results.values())
        print("[%6.1fs] parts %d/%d done, %d files scanned, %s transferred" % (
            time.time() - started, len(results), len(parts), files, summaries.human_bytes(moved)),
            file=sys.stderr, flush=True)


def cmd_backup(args):
    started = time.time()
    run = runs.prepare(_backup_request(args))
    layout = Layout(args.backup_root, args.backup_id)
    if not args.quiet:
        print("run %s: %s %s -> %s (attempt %d, work tree: %s, %d workers)" % (
            run.run_id, args.interval, args.source, layout.id_dir, run.attempt, run.tree_base,
            args.workers), file=sys.stderr, flush=True)
    command = ["work", "--backup-root", args.backup_root, "--id", args.backup_id, "--interval", args.interval,
               "--source", args.source]
    if args.require_mountpoint:
        command.append("--require-mountpoint")

    def finalize(exits):
        return runs.finalize(args.backup_root, args.backup_id, args.interval, run.run_id, verify=args.verify,
                             worker_exits=exits)

    result = _run_workers(args, layout, run.run_id, layout.run_dir(args.interval), command, started, finalize)
    _print_summary(result, args.json)
    return _exit_for(result["status"])


def _run_workers(args, layout, run_id, store_dir, command, started, finalize, worker_stdout=None):
    """The local runner's workers: args.workers engines running the step `command` (engine arguments; each with
    its own --worker-id) while a thread prints progress and this process beats the lock; then finalize(worker
    exits) under the same heartbeat. Returns finalize's summary.

    One worker runs in this process, as `work --streams 1` runs its one stream on an EC2 worker: no interpreter
    to start and no second copy of the engine to import and tear down (about 0.07 s of a 100,000-file run,
    bench/README.md). More run as engine processes (_fan_out)."""
    stop = threading.Event()
    printer = threading.Thread(target=_progress_printer, args=(store_dir, started, stop, args.quiet), daemon=True)
    printer.start()
    with Heartbeat(RunLock(layout), run_id):
        ids = ["w%d" % i for i in range(args.workers)]
        if len(ids) == 1:
            exits = {ids[0]: _work_here(command + ["--worker-id", ids[0]], worker_stdout)}
        else:
            exits = _fan_out(command, ids, {worker_id: worker_stdout for worker_id in ids})
        stop.set()
        return finalize(exits)


def _work_here(argv, stdout):
    """The engine step `argv` run in this process, its report going to `stdout` (None: this process's); returns
    its exit code as _fan_out would. An unexpected error is printed and is exit code 1, as a worker process's
    traceback and exit would be, so that finalize records the crash and the run ends with its summary."""
    import contextlib
    import traceback

    try:
        with contextlib.redirect_stdout(stdout or sys.stdout):
            return main(argv)
    except Exception:  # noqa: BLE001 - reported as a crashed worker's, never lost
        traceback.print_exc()
        return EXIT_FAILED


def _fan_out(command, worker_ids, stdouts):
    """Runs the engine step `command` (engine arguments) with `--worker-id ID` as an engine process for each of
    worker_ids, at once, and waits for all of them; returns {worker id: exit code (negative: killed by that
    signal)}. stdouts: {worker id: where its stdout goes (None: this process's)}. The local runner's workers and
    a worker's streams are both started here.

    Each process dies with this one (see _die_with_parent): killed, this process leaves none of them running."""
    env = child_env(**{PARENT_ENV: str(os.getpid())})
    procs = {worker_id: subprocess.Popen([sys.executable, "-m", "efs_backup_engine"] + command
                                         + ["--worker-id", worker_id], env=env, stdout=stdouts.get(worker_id))
             for worker_id in worker_ids}
    return {worker_id: proc.wait() for worker_id, proc in procs.items()}


def _die_with_parent():
    """In an engine process _fan_out started: ask the kernel to SIGKILL this process when the process that started
    it exits, however it exits (prctl PR_SET_PDEATHSIG, Linux: the workers' Amazon Linux), and exit at once if it
    already has. A stream then never goes on claiming and writing parts after its worker reported (or after the
    local runner was killed). An rsync the stream was running is not asked to stop: it prints only its closing
    summary, so it goes on copying its list into the work tree and ends when it writes that summary to the dead
    stream's pipe. A part it was writing is redone by the next run like any part a killed worker left; a next
    run that starts before that rsync ends can have its copy written into by it (on an instance that is stopped
    or terminated, every process goes at once).
    Elsewhere than Linux (no prctl), nothing is asked and streams end when their parts do."""
    expected = os.environ.pop(PARENT_ENV, None)
    if expected is None:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1  # <linux/prctl.h>
        if libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (AttributeError, OSError) as exc:
        print("efs-backup-engine: warning: this process will not die with its parent: %s" % exc, file=sys.stderr)
    if str(os.getppid()) != expected:  # the parent died before prctl: nothing would kill this process
        print("efs-backup-engine: error: the process that started this one is gone", file=sys.stderr)
        os._exit(EXIT_FAILED)


def _worst_exit(codes):
    """The worst of exit codes by EXIT_ORDER; a signal death (negative code) becomes 128 + signal, as a shell
    reports it."""
    def rank(code):
        return EXIT_ORDER.index(code) if code in EXIT_ORDER else len(EXIT_ORDER)

    worst = max(codes, key=rank)
    return 128 - worst if worst < 0 else worst


def _stream_ids(worker_id, streams):
    return ["%s-s%d" % (worker_id, index) for index in range(streams)]


def _run_streams(args, command):
    """`work`/`restore-work --streams S` (S > 1): S streams of `command` (the same step without --streams and
    --worker-id), each with worker id <worker-id>-s<j>; then one report for them all, in the format of one
    stream's (see _worker_report) plus each stream's exit code and parts. Exit code: the worst stream's."""
    ids = _stream_ids(args.worker_id, args.streams)
    if not all(WORKER_ID_RE.fullmatch(worker_id) for worker_id in ids):
        raise Refused("worker id %r is too long for its streams' ids (%s)" % (args.worker_id, ids[-1]))
    import tempfile  # only a worker's streams need it (every engine process pays for what it imports)

    outputs = {worker_id: tempfile.TemporaryFile() for worker_id in ids}  # never a pipe: a long report can't block
    try:
        exits = _fan_out(command, ids, outputs)
        reports = {}
        for worker_id, output in outputs.items():
            output.seek(0)
            reports[worker_id] = _last_json(output.read())
    finally:
        for output in outputs.values():
            output.close()
    code = _worst_exit(list(exits.values()))
    summary = {"worker": args.worker_id, "parts": 0, "failed": [], "files_scanned": 0, "bytes_transferred": 0,
               "status": {EXIT_OK: "success", EXIT_WARNINGS: "warning"}.get(code, "failed"), "streams": []}
    for worker_id in ids:
        report = reports[worker_id] or {}
        for key in ("parts", "files_scanned", "bytes_transferred"):
            summary[key] += report.get(key, 0)
        summary["failed"] += report.get("failed", [])
        summary["streams"].append({"worker": worker_id, "exit": exits[worker_id], "parts": report.get("parts")})
    print(json.dumps(summary, sort_keys=True))
    return code


def _last_json(data):
    """The JSON object on the last line of a stream's stdout, or None (it printed none: it died or was refused)."""
    lines = data.decode("utf-8", "replace").strip().splitlines()
    try:
        report = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def _human(result):
    return _restores().human(result) if result.get("kind") == "restore" else summaries.human(result)


def _print_summary(result, as_json):
    print(_human(result), file=sys.stderr if as_json else sys.stdout, flush=True)
    if as_json:
        print(json.dumps(result, sort_keys=True), flush=True)


def _backup_request(args, run_id=None, step=False):
    return BackupRequest(source=args.source, backup_root=args.backup_root, backup_id=args.backup_id,
                         interval=args.interval, retain=args.retain, workers=args.workers, run_id=run_id,
                         require_mountpoint=args.require_mountpoint, allow_empty_source=args.allow_empty_source,
                         stale_after=args.stale_after, part_files=args.part_files,
                         resume_max_age=args.resume_max_age, step=step,
                         streams_per_worker=_checked_streams_per_worker(args))


def _checked_streams_per_worker(args):
    """prepare's --streams-per-worker (it must divide --workers); the local runner's workers all run on this one
    machine: --workers streams on one."""
    per = getattr(args, "streams_per_worker", None)
    if per is None:
        return args.workers
    if args.workers % per:
        raise Refused("--workers %d is not a multiple of --streams-per-worker %d: --workers counts the streams of all "
                      "worker machines (machines x streams per machine)" % (args.workers, per))
    return per


def cmd_prepare(args):
    run = runs.prepare(_backup_request(args, run_id=args.run_id, step=True))
    print(json.dumps(run.to_json(), sort_keys=True))
    return EXIT_OK


def cmd_work(args):
    if args.streams > 1:
        command = ["work", "--backup-root", args.backup_root, "--id", args.backup_id, "--interval", args.interval]
        if args.source:
            command += ["--source", args.source]
        return _run_streams(args, command + (["--require-mountpoint"] if args.require_mountpoint else []))
    results = runs.work(args.backup_root, args.backup_id, args.interval, args.worker_id, source=args.source,
                        require_mountpoint=args.require_mountpoint)
    return _worker_report(args.worker_id, results)


def _worker_report(worker_id, results):
    """One JSON line for the worker's own parts; exit 1 if one failed, 2 if one warned."""
    statuses = {r["status"] for r in results}
    summary = {"worker": worker_id, "parts": len(results),
               "failed": [r["path"] or "." for r in results if r["status"] == "failed"],
               "files_scanned": sum(r.get("files_scanned", 0) for r in results),
               "bytes_transferred": sum(r.get("bytes_transferred", 0) for r in results)}
    print(json.dumps(summary, sort_keys=True))
    if "failed" in statuses:
        return EXIT_FAILED
    return EXIT_WARNINGS if "warning" in statuses else EXIT_OK


def cmd_finalize(args):
    result = runs.finalize(args.backup_root, args.backup_id, args.interval, args.run_id, verify=args.verify)
    _print_summary(result, args.json)
    return _exit_for(result["status"])


def cmd_abort(args):
    result = runs.abort(args.backup_root, args.backup_id, args.interval, args.run_id, reason=args.reason)
    return _report_abort(args, result, {"interval": args.interval})


def _report_abort(args, result, extra):
    if result is None:
        result = dict(extra, status="failed", run_id=args.run_id, backup_id=args.backup_id,
                      aborted=args.reason or "aborted by the orchestrator", failed_parts=[],
                      note="this run was never prepared on the backup file system")
        if not args.json:
            print(result["note"], file=sys.stderr)
    if args.json:
        print(json.dumps(result, sort_keys=True), flush=True)
    else:
        print(_human(result) if "totals" in result else "aborted run %s" % args.run_id)
    return EXIT_OK


def _prepare_restore(args, run_id=None, step=False):
    return _restores().prepare(RestoreRequest(
        backup_root=args.backup_root, backup_id=args.backup_id, target=args.target, snapshot=args.snapshot,
        at=args.at, paths=args.paths, mirror=args.mirror, dry_run=args.dry_run, workers=args.workers,
        run_id=run_id, state_dir=args.state_dir, require_mountpoint=args.require_mountpoint,
        stale_after=args.stale_after, part_files=args.part_files, step=step,
        streams_per_worker=_checked_streams_per_worker(args)))


def cmd_restore(args):
    started = time.time()
    run = _prepare_restore(args)
    layout = Layout(args.backup_root, args.backup_id, args.state_dir)
    if not args.quiet:
        print("run %s: restore %s %s (snapshot id %s) -> %s, %s mode%s, paths %s, %d workers" % (
            run.run_id, args.backup_id, run.snapshot, run.snapshot_id, run.target, run.mode,
            " (dry run)" if run.dry_run else "", ", ".join(p or "." for p in run.paths), args.workers),
            file=sys.stderr, flush=True)
    command = ["restore-work", "--backup-root", args.backup_root, "--id", args.backup_id, "--run-id", run.run_id]
    if args.state_dir:
        command += ["--state-dir", args.state_dir]
    if args.require_mountpoint:
        command.append("--require-mountpoint")

    def finalize(exits):
        return _restores().finalize(args.backup_root, args.backup_id, run.run_id, state_dir=args.state_dir,
                                    worker_exits=exits)

    # The workers' own report lines go to stderr: stdout carries only the summary.
    result = _run_workers(args, layout, run.run_id, layout.restore_dir(run.run_id), command, started, finalize,
                          worker_stdout=sys.stderr)
    _print_summary(result, args.json)
    return _exit_for(result["status"])


def cmd_restore_prepare(args):
    print(json.dumps(_prepare_restore(args, run_id=args.run_id, step=True).to_json(), sort_keys=True))
    return EXIT_OK


def cmd_restore_work(args):
    if args.streams > 1:
        command = ["restore-work", "--backup-root", args.backup_root, "--id", args.backup_id]
        for option, value in (("--state-dir", args.state_dir), ("--run-id", args.run_id), ("--target", args.target)):
            if value:
                command += [option, value]
        return _run_streams(args, command + (["--require-mountpoint"] if args.require_mountpoint else []))
    results = _restores().work(args.backup_root, args.backup_id, args.worker_id, run_id=args.run_id,
                               state_dir=args.state_dir, require_mountpoint=args.require_mountpoint,
                               target=args.target)
    return _worker_report(args.worker_id, results)


def cmd_restore_finalize(args):
    result = _restores().finalize(args.backup_root, args.backup_id, args.run_id, state_dir=args.state_dir)
    _print_summary(result, args.json)
    return _exit_for(result["status"])


def cmd_restore_abort(args):
    result = _restores().abort(args.backup_root, args.backup_id, args.run_id, reason=args.reason,
                               state_dir=args.state_dir)
    return _report_abort(args, result, {"kind": "restore"})


def cmd_list(args):
    listing = runs.list_snapshots(args.backup_root, args.backup_id)
    if args.json:
        print(json.dumps(listing, sort_keys=True))
        return EXIT_OK
    print("%-12s %-9s %-20s %12s %12s %s" % ("snapshot", "status", "finished", "files", "bytes", "run"))
    for row in listing["snapshots"]:
        print("%-12s %-9s %-20s %12s %12s %s" % (row["name"], row["status"], row.get("finished") or "-",
                                                  row.get("files", "-"), row.get("bytes", "-"),
                                                  row.get("run_id", "-")))
    lock = listing["lock"]
    if lock["held"]:
        print("lock: held by run %s, %s (%s)" % ((lock["owner"] or {}).get("run_id", "?"), describe_owner(lock["owner"]),
                                                 "alive" if lock["alive"] else "STALE: " + lock["detail"]))
    for run in listing["unfinished_runs"]:
        print("unfinished %s run %s (attempt %d): the next %s run resumes it" % (
            run["interval"], run["run_id"], run["attempt"], run["interval"]))
    if listing["interrupted_promotion"]:
        print("an interrupted promotion will be completed by the next run")
    return EXIT_OK


def cmd_verify(args):
    from efs_backup_engine.verify import compare

    layout = Layout(args.backup_root, args.backup_id)
    preflight.check_backup_root(layout)
    name = args.snapshot
    if name is None:
        dests = runs.link_dests(layout, "daily")
        if not dests:
            raise EngineError("no snapshot to verify under %s" % layout.id_dir)
        name = os.path.basename(dests[0])
    path = layout.snapshot(name)
    if not os.path.isdir(path):
        raise EngineError("no snapshot %s under %s" % (name, layout.id_dir))
    manifest = read_json(layout.manifest(name)) or {}
    one_part = manifest.get("parts") == 1  # hard links are exact across the tree only in a one-part snapshot
    report = compare(args.source, path, checksum=args.checksum, hardlinks="tree" if one_part else "directory")
    report["snapshot"] = name
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print("%s: %d entries compared, %d checksummed, %d mismatches" % (
            name, report["compared"], report["checksummed"], report["mismatch_count"]))
        for line in report["mismatches"][:100]:
            print("  " + line)
    return EXIT_OK if not report["mismatch_count"] else EXIT_WARNINGS


def cmd_unlock(args):
    layout = Layout(args.backup_root, args.backup_id)
    preflight.check_backup_root(layout)
    lock = RunLock(layout)
    exists, alive, owner, detail = lock.holder_state()
    if not exists:
        print("not locked")
        return EXIT_OK
    print("locked by run %s on %s: %s (%s)" % ((owner or {}).get("run_id", "?"), (owner or {}).get("host", "?"),
                                                "ALIVE" if alive else "stale", detail))
    if args.force:
        lock.force_unlock()
        print("lock broken; " + ("run the restore again to complete it" if (owner or {}).get("kind") == "restore"
                                 else "the run's work tree is kept and the next run resumes it"))
    return EXIT_OK


def cmd_init(args):
    _data, created = preflight.init_root(args.backup_root)
    print(("initialised %s" if created else "%s is already an efs-backup root") % args.backup_root)
    return EXIT_OK


def cmd_bound_report(args):
    try:
        report = json.loads(sys.stdin.read())
    except ValueError as exc:
        print("efs-backup-engine: error: the report is not JSON: %s" % exc, file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(bounded.bound(report, args.max_bytes, args.note), sort_keys=True))
    return EXIT_OK


COMMANDS = {"bound-report": cmd_bound_report, "init": cmd_init, "backup": cmd_backup, "prepare": cmd_prepare, "work": cmd_work,
            "finalize": cmd_finalize, "abort": cmd_abort, "list": cmd_list, "verify": cmd_verify,
            "unlock": cmd_unlock, "restore": cmd_restore, "restore-prepare": cmd_restore_prepare,
            "restore-work": cmd_restore_work, "restore-finalize": cmd_restore_finalize,
            "restore-abort": cmd_restore_abort}


def main(argv=None):
    parser = build_parser()
    _die_with_parent()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    # Under worker.sh: prove progress while this command runs (see lock.ProgressProbe). A process that only runs
    # streams does not: each stream proves its own, so streams that all stopped stop the worker's heartbeats.
    if getattr(args, "streams", 1) == 1:
        ProgressProbe.from_environment([getattr(args, name, None) for name in ("source", "backup_root", "state_dir",
                                                                               "target")])
    try:
        return COMMANDS[args.command](args)
    except EngineError as exc:
        print("efs-backup-engine: error: %s" % exc, file=sys.stderr)
        return exc.exit_code
