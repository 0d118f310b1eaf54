"""efs-backup worker helpers: what worker.sh needs decided in Python rather than bash.

worker.sh (the instance's lifecycle: trap, mounts, heartbeat, report, power off) calls these through the
``efs-backup-worker`` launcher beside it; each module has one responsibility:

- ``task``: the task pointer and the task object a state machine wrote for this instance (checked field by field);
- ``restore_request``: a restore request turned into the engine's restore options (refuses unknown fields, so a
  misspelt ``dry_run`` never restores for real);
- ``log_batches``: the next batch of the worker's log for CloudWatch Logs (within the PutLogEvents limits);
- ``report``: what a worker reports: the error name of an engine exit code, the failed parts of an engine result;
- ``cli``: the commands worker.sh runs (values NUL-separated on stdout, reasons on stderr).

Python 3.9 standard library only (Amazon Linux 2023's python3), plus efs_backup_contract beside it.
"""
