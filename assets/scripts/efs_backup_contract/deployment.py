"""How a deployment is found and read: the stack's tags and the outputs the operator CLI uses."""

TAG_ENVIRONMENT = "efs-backup:environment"
TAG_BACKUP_ID = "efs-backup:backup-id"

OUTPUT_STATE_MACHINE = "StateMachineArn"
OUTPUT_RESTORE_STATE_MACHINE = "RestoreStateMachineArn"
OUTPUT_RUN_HISTORY_TABLE = "RunHistoryTableName"
OUTPUT_WORKER_LOG_GROUP = "WorkerLogGroupName"
OUTPUT_BACKUP_ID = "BackupId"

# The outputs the CLI reads (RestoreStateMachineArn only for restores).
CLI_OUTPUTS = (OUTPUT_STATE_MACHINE, OUTPUT_RESTORE_STATE_MACHINE, OUTPUT_RUN_HISTORY_TABLE, OUTPUT_WORKER_LOG_GROUP,
               OUTPUT_BACKUP_ID)
