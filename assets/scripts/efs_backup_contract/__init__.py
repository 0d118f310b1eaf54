"""The values shared across efs-backup's boundaries, each defined once.

Every side of a boundary imports the module for it: the CDK app (stacks/, constructs/, settings/), the engine on
the workers and in the local runner (efs_backup_engine), the operator CLI (efs_backup_cli) and, where bash must know
a value, worker.sh through a test that compares it with these modules (tests/contract/).

- ``intervals``: the snapshot intervals and their lengths (config keys, engine layout, CLI choices);
- ``limits``: the hard-link and worker limits (config validation, engine refusals, the planner);
- ``exits``: the engine's exit codes and the error names workers report to Step Functions (worker.sh, the CLI);
- ``deployment``: the stack outputs, tags and metric names by which the CLI finds and reads a deployment;
- ``task``: the worker task (roles, task fields, restore-request fields) and the error names workers report besides
  the engine's (the state machines, worker.sh and efs_backup_worker);
- ``times``: the ISO 8601 times operators give (a restore's ``at``), parsed alike on Python 3.9 and later.

This package ships to the workers inside the scripts asset (assets/scripts/) and is part of the CLI's
distribution (pyproject.toml): it imports nothing but the standard library and must run on Python 3.9.
"""
