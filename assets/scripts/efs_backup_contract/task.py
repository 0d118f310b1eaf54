"""The worker task: what the stack hands each worker instance, and what a worker reports back.

The user data points each instance at its task object; a state machine writes one task object per instance to S3
(constructs/fleet_workflow.py, ``TASK_ENVELOPE``): ``{"task_token": "...", "task": {<task_fields(role)>}}``.
worker.sh reads both through efs_backup_worker.task; tests/contract/ checks that the synthesized templates write
exactly these fields and roles, and that worker.sh dispatches exactly these roles and reports only these error
names.
"""

from efs_backup_contract.exits import ERROR_NAMES

# What the user data (constructs/worker_launch_template.py) hands worker.sh: the install root (EFS_BACKUP_HOME,
# default INSTALL_DIR) and a pointer file, JSON with POINTER_FIELDS: where in S3 the task object is.
INSTALL_DIR = "/opt/efs-backup"
POINTER_FIELDS = ("region", "bucket", "key")

# Where the callback token of the Step Functions task is, beside "task" (a secret: never logged).
TASK_TOKEN = "task_token"

BACKUP_ROLES = ("work", "finalize", "abort")
RESTORE_ROLES = ("restore-work", "restore-finalize", "restore-abort")
ROLES = BACKUP_ROLES + RESTORE_ROLES

# The fields of every task, then those of a backup's and a restore's roles.
COMMON_TASK_FIELDS = ("role", "backup_id", "worker_index", "worker_count", "run_id", "source_file_system_id",
                      "backup_file_system_id", "region", "log_group", "heartbeat_seconds")
BACKUP_TASK_FIELDS = ("interval", "retain")
RESTORE_TASK_FIELDS = ("request",)  # the restore request as JSON text (RESTORE_REQUEST_FIELDS)
# The fields of the roles that work on parts (the first of BACKUP_ROLES and of RESTORE_ROLES) only: "streams", the
# engine streams this instance runs (limits.MAX_STREAMS_PER_WORKER at most; worker_count x streams in all).
WORK_TASK_FIELDS = ("streams",)
WORK_ROLES = (BACKUP_ROLES[0], RESTORE_ROLES[0])


def task_fields(role):
    """The fields a task of ``role`` holds, in this order (KeyError for an unknown role)."""
    work = WORK_TASK_FIELDS if role in WORK_ROLES else ()
    if role in BACKUP_ROLES:
        return COMMON_TASK_FIELDS + BACKUP_TASK_FIELDS + work
    if role in RESTORE_ROLES:
        return COMMON_TASK_FIELDS + RESTORE_TASK_FIELDS + work
    raise KeyError(role)


# The restore request (the restore state machine's input, see constructs/restore_workflow.py). The state machine
# checks the values of these fields but lets any other field through; the workers refuse a request with any other
# field, so a misspelt "dry_run" never turns into a real restore. "workers" and "streams" are the state machine's
# alone (they become the tasks' worker_count and streams).
RESTORE_REQUEST_FIELDS = ("snapshot", "at", "paths", "target_file_system_id", "target_path", "mirror", "dry_run",
                          "workers", "streams")

# The error names a worker reports (send-task-failure's ``error``) besides the engine's (exits.ERROR_NAMES):
ENGINE_WORK_FAILED = "EngineWorkFailed"  # work / restore-work finished with failed parts (the state machine
#                                          records the run as failed and still finalizes it)
WORKER_FAILED = "WorkerFailed"  # the worker itself failed: a mount, its task object, delivering its result, a crash
WORKER_ERROR_NAMES = (ENGINE_WORK_FAILED, WORKER_FAILED) + tuple(ERROR_NAMES.values())
