"""How a deployment is found and read: the stack's tags and the outputs the operator CLI uses."""

TAG_ENVIRONMENT = "efs-backup:environment"
TAG_BACKUP_ID = "efs-backup:backup-id"

# The stack's name when the configuration names none (stack_name): the CLI finds a stack deployed without stack
# tags by it.
DEFAULT_STACK_NAME = "EfsBackup-{environment}"

OUTPUT_STATE_MACHINE = "StateMachineArn"
OUTPUT_RESTORE_STATE_MACHINE = "RestoreStateMachineArn"
OUTPUT_RUN_HISTORY_TABLE = "RunHistoryTableName"
OUTPUT_WORKER_LOG_GROUP = "WorkerLogGroupName"
OUTPUT_BACKUP_ID = "BackupId"
OUTPUT_SOURCE_FILE_SYSTEM = "SourceFileSystemId"  # production: where a restore writes by default

# The outputs the CLI reads (RestoreStateMachineArn only for restores); a stack with the first, third and fifth is
# an efs-backup stack even without tags.
CLI_OUTPUTS = (OUTPUT_STATE_MACHINE, OUTPUT_RESTORE_STATE_MACHINE, OUTPUT_RUN_HISTORY_TABLE, OUTPUT_WORKER_LOG_GROUP,
               OUTPUT_BACKUP_ID)

# The custom metric of each interval's newest-snapshot time: the stale-snapshot alarms watch it, and the CLI reads
# those alarms' thresholds from the deployed template (alarm_stale_multiple x the interval's length).
METRIC_NAMESPACE = "EfsBackup"
METRIC_NEWEST_SNAPSHOT = "NewestSnapshotTimestamp"
