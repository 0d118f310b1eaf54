#!/usr/bin/env bash
# efs-backup worker entrypoint: one EC2 instance, one task of one Step Functions execution.
#
# Usage: worker.sh POINTER_FILE
#
# This script is the instance's lifecycle: fetch the task, mount, heartbeat, run the engine, report, unmount, ship
# the log, power off. What is better decided in Python (checking the task, the restore request, cutting the log
# into batches, error names) is in efs_backup_worker/, run through the efs-backup-worker launcher beside it (helper).
#
# The user data (built by constructs/worker_launch_template.py) fetches assets/scripts/ from the script bucket at
# the exact version the execution was deployed with, writes POINTER_FILE and runs this script. POINTER_FILE is JSON
# {"region", "bucket", "key"}: where this instance's task object is (the state machine writes it right after the
# launch, see constructs/fleet_workflow.py). fetch_task waits for it (at most TASK_WAIT_SECONDS), copies it to
# TASK_FILE and deletes it from the bucket (every version: it holds the task token). The task object is JSON:
#   {"task_token": "...",                       the callback token of the Step Functions task (a secret)
#    "task": {"role": "work|finalize|abort|restore-work|restore-finalize|restore-abort",   what this instance does
#             "backup_id", "worker_index", "worker_count", "run_id" (the execution name),
#             "source_file_system_id", "backup_file_system_id", "region", "log_group", "heartbeat_seconds",
#             backup roles: "interval", "retain";  restore roles: "request" (the restore request as JSON text,
#             see constructs/restore_workflow.py);  work and restore-work: "streams" (engine streams here)}}
# (the contract: efs_backup_contract/task.py). read_task_file sets TASK_<FIELD> for each field of the task's role,
# e.g. TASK_ROLE, TASK_RUN_ID, TASK_TASK_TOKEN, once efs_backup_worker.task has checked every one of them.
#
# Backup roles:
#   work      mount both file systems (production read-only), `init` + `prepare` (every worker calls prepare with
#             the same run id: the first sets the run up, the others join), then `work` until no part is left.
#             The engine runs TASK_STREAMS streams here (`work --streams`): prepare is told the run's streams in all
#             (worker_count x streams) and the streams per worker. Task output: the engine's `work` JSON (one for
#             all the streams).
#   finalize  mount the backup file system, `finalize --json`: promote if every part succeeded, else record the
#             failure and release the lock. Task output: the engine's run summary (also when the run failed).
#   abort     mount the backup file system, `abort`: release the lock if this run holds it, keep the work.
#
# Restore roles (the backup file system is mounted READ-ONLY; only its <backup-id>/.efs-backup state directory, where
# the lock and the restore's bookkeeping live, is mounted read-write):
#   restore-work      also mount the target file system (the production one) read-write, then `restore-prepare`
#                     (all workers join one run) and `restore-work` until no part is left.
#   restore-finalize  `restore-finalize --json`: the restore summary (plan, totals, failed parts) is the result.
#   restore-abort     `restore-abort`: record why the restore stopped, release the lock if this run holds it.
#
# Whatever happens, the EXIT trap reports exactly once: send-task-success with the engine's JSON, or
# send-task-failure with an error name and a reason (naming the failed parts), then stops the heartbeat, unmounts,
# flushes the rest of the log to CloudWatch Logs (best effort: a background loop has been streaming it all along,
# see ship_log_batches) and powers the instance off (shutdown behaviour: terminate).
#
# Environment:
#   EFS_BACKUP_HOME          install root (default /opt/efs-backup): scripts/, mnt/, log/ live under it.
#   EFS_BACKUP_STALL_SECONDS heartbeats stop after this long without progress (user data: worker_stall_seconds;
#                            default 300). The engine's probe period is EFS_BACKUP_PROGRESS_SECONDS (default 15).
#   EFS_BACKUP_PACKAGES      "preinstalled" (user data, with worker_image): never run dnf; a missing package fails.
#   EFS_BACKUP_LOCAL_MOUNTS  THE MOUNT SEAM, for tests only: "SRC_DIR:BACKUP_DIR[:OTHER_DIR]" (OTHER_DIR stands for
#                            any restore target other than the production file system). mount_filesystems then
#                            bind-mounts these local directories (--rbind; read-only where EFS is mounted read-only;
#                            the production directory also serves as the restore target, the backup's state
#                            subdirectory as the state mount) at the same mount points
#                            instead of mounting EFS, and power_off does not stop the machine (there is no
#                            instance to stop). Everything else, the engine calls included, is the production path;
#                            the engine still gets --require-mountpoint, so each directory must be a file system of
#                            its own (e.g. a tmpfs), as the EFS it stands for is. Needs root (mount).
set -euo pipefail

EFS_BACKUP_HOME="${EFS_BACKUP_HOME:-/opt/efs-backup}"
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENGINE="$SCRIPTS_DIR/efs-backup-engine"
HELPER="$SCRIPTS_DIR/efs-backup-worker"
SOURCE_MOUNT="$EFS_BACKUP_HOME/mnt/source"
BACKUP_MOUNT="$EFS_BACKUP_HOME/mnt/backup"
STATE_MOUNT="$EFS_BACKUP_HOME/mnt/backup-state"
TARGET_MOUNT="$EFS_BACKUP_HOME/mnt/target"
LOG_DIR="$EFS_BACKUP_HOME/log"
LOG_FILE="$LOG_DIR/worker.log"

REPORTED=""
HEARTBEAT_PID=""
LOG_SHIPPER_PID=""
MOUNTED=()
ENGINE_OUTPUT=""
STREAM_OPTIONS=()

log() {
  printf '%s worker: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

# Runs an efs_backup_worker command (see efs_backup_worker/cli.py): values on stdout, NUL-terminated.
helper() {
  python3 "$HELPER" "$@"
}

# ------------------------------------------------------------------------------------------------- task input

TASK_WAIT_SECONDS=900 # how long a worker waits for its task object before it gives up (and powers off)
TASK_POLL_SECONDS=3

# Reads POINTER_FILE; waits for the task object, copies it to TASK_FILE ($1 -> $2), deletes it from the bucket.
# Sets TASK_REGION to the pointer's region (the task's own region field replaces it once the task is read).
fetch_task() {
  local pointer_file="$1" task_file="$2" region bucket key waited=0 meta version
  { IFS= read -r -d '' region && IFS= read -r -d '' bucket && IFS= read -r -d '' key; } < <(
    helper task-pointer "$pointer_file") || { log "task pointer $pointer_file is unreadable"; return 1; }
  TASK_REGION="$region"
  log "waiting for the task object s3://$bucket/$key"
  until meta="$(aws s3api get-object --region "$region" --bucket "$bucket" --key "$key" "$task_file" \
    2>"$LOG_DIR/task-fetch.err")"; do
    if ((waited >= TASK_WAIT_SECONDS)); then
      log "no task object after ${TASK_WAIT_SECONDS}s: nothing to do (last error: $(tail -n 1 "$LOG_DIR/task-fetch.err"))"
      return 1
    fi
    sleep "$TASK_POLL_SECONDS"
    waited=$((waited + TASK_POLL_SECONDS))
  done
  IFS= read -r -d '' version < <(helper object-version "$meta") || version=""
  # A versioned bucket keeps a deleted object's data until its version is deleted too: delete exactly that version.
  if [[ -n "$version" ]]; then
    aws s3api delete-object --region "$region" --bucket "$bucket" --key "$key" --version-id "$version" >/dev/null ||
      log "could not delete the task object's version $version"
  else
    aws s3api delete-object --region "$region" --bucket "$bucket" --key "$key" >/dev/null ||
      log "could not delete the task object"
  fi
}

# Sets TASK_<FIELD> for every field of the task object's role (efs_backup_worker.task checks each one: names,
# types, ranges, formats). A refused task is reported as WorkerFailed with the reason, when its task token is
# readable (otherwise its Step Functions task times out), and returns 1.
read_task_file() {
  local task_file="$1" fields_file="$EFS_BACKUP_HOME/task.fields" refusal="" status=0 name value
  refusal="$(helper task-fields "$task_file" 2>&1 >"$fields_file")" || status=$?
  [[ -z "$refusal" ]] || log "$refusal"
  while IFS= read -r -d '' name && IFS= read -r -d '' value; do
    if [[ "$name" =~ ^[a-z_]+$ ]]; then # the names are the contract's; never anything else
      printf -v "TASK_${name^^}" '%s' "$value"
    fi
  done <"$fields_file"
  rm -f "$fields_file"
  if [[ "$status" -ne 0 ]]; then
    [[ -z "${TASK_TASK_TOKEN:-}" ]] || report_failure WorkerFailed "the worker could not use its task: $refusal"
    return 1
  fi
}

# ----------------------------------------------------------------------------------------- Step Functions calls

sfn() {
  aws stepfunctions --region "$TASK_REGION" "$@"
}

# What a task may hand back: Step Functions takes at most 256 KiB of task output, and the state machine puts the
# summary into the run-history item and the notification beside other fields (bounded.py has the sources), so a
# report is cut down to REPORT_MAX_BYTES; the full summary stays on the backup file system (history/<run-id>.json).
REPORT_MAX_BYTES=32768
REPORT_MIN_BYTES=4096 # the last try: only the outcome's scalars

bounded_report() {
  local output="$1" max_bytes="$2"
  printf '%s' "$output" | python3 "$ENGINE" bound-report --max-bytes "$max_bytes" \
    --note "full summary: $TASK_BACKUP_FILE_SYSTEM_ID:/$TASK_BACKUP_ID/.efs-backup/history/$TASK_RUN_ID.json"
}

report_success() {
  local output="$1" bounded max_bytes
  [[ -n "$REPORTED" ]] && return 0
  for max_bytes in "$REPORT_MAX_BYTES" "$REPORT_MIN_BYTES"; do
    bounded="$(bounded_report "$output" "$max_bytes")" || bounded="$output"
    log "reporting success (${#bounded} of ${#output} bytes)"
    if sfn send-task-success --task-token "$TASK_TASK_TOKEN" --task-output "$bounded" >/dev/null; then
      REPORTED=success
      return 0
    fi
  done
  # Never leave the task waiting for its heartbeat timeout: say that the result could not be delivered.
  report_failure WorkerFailed "the $TASK_ROLE step finished but send-task-success failed (result of ${#output} bytes)"
}

report_failure() {
  local error="$1" cause="$2"
  [[ -n "$REPORTED" ]] && return 0
  REPORTED=failure
  log "reporting failure: $error: $cause"
  sfn send-task-failure --task-token "$TASK_TASK_TOKEN" --error "$error" --cause "${cause:0:32000}" >/dev/null
}

# ------------------------------------------------------------------------------------ progress and heartbeats
# A heartbeat must prove progress, not a live shell loop. PROGRESS_FILE is touched by this script at each of its
# own steps (note_progress) and, while the engine runs, by the engine's progress probe (EFS_BACKUP_PROGRESS_FILE:
# every EFS_BACKUP_PROGRESS_SECONDS, after a round trip to each mounted file system). The heartbeat loop sends
# send-task-heartbeat (the first at once: boot already took most of the first period) only while that file is
# younger than STALL_SECONDS (the user data sets EFS_BACKUP_STALL_SECONDS from worker_stall_seconds). A hung hard
# NFS mount or a stopped engine therefore fails the task after STALL_SECONDS plus its heartbeat timeout.
PROGRESS_FILE="$EFS_BACKUP_HOME/progress"
STALL_SECONDS="${EFS_BACKUP_STALL_SECONDS:-300}"
export EFS_BACKUP_PROGRESS_FILE="$PROGRESS_FILE"

note_progress() {
  touch "$PROGRESS_FILE"
}

progress_age() {
  local changed
  changed="$(stat -c %Y "$PROGRESS_FILE" 2>/dev/null || echo 0)"
  echo $(($(date +%s) - changed))
}

start_heartbeat() {
  note_progress
  (
    while true; do
      age="$(progress_age)"
      if ((age <= STALL_SECONDS)); then
        sfn send-task-heartbeat --task-token "$TASK_TASK_TOKEN" >/dev/null 2>&1 || log "heartbeat not accepted"
      else
        log "no progress for ${age}s (limit ${STALL_SECONDS}s: a hung file system or engine?): heartbeat withheld"
      fi
      sleep "$TASK_HEARTBEAT_SECONDS"
    done
  ) &
  HEARTBEAT_PID=$!
}

stop_heartbeat() {
  if [[ -n "$HEARTBEAT_PID" ]]; then
    kill "$HEARTBEAT_PID" 2>/dev/null || true
    wait "$HEARTBEAT_PID" 2>/dev/null || true
    HEARTBEAT_PID=""
  fi
}

# ------------------------------------------------------------------------------------------------- mounts

# The one place that attaches file systems; see EFS_BACKUP_LOCAL_MOUNTS in the header. Returns 1 at the first
# mount that fails (explicitly: callers may run it where set -e does not apply).
# Arguments, in mount order: "source" (production, read-only), "backup" (read-write), "backup-ro" (read-only),
# "backup-state" (the backup-id's .efs-backup directory, read-write), "target" (RESTORE_TARGET_FS, read-write).
mount_filesystems() {
  local which mount_point fs_id fs_path local_dir options local_source local_backup local_other
  IFS=: read -r local_source local_backup local_other <<<"${EFS_BACKUP_LOCAL_MOUNTS:-}"
  local state_path="/$TASK_BACKUP_ID/.efs-backup"
  for which in "$@"; do
    fs_path="/"
    case "$which" in
      source) mount_point="$SOURCE_MOUNT" fs_id="$TASK_SOURCE_FILE_SYSTEM_ID" local_dir="$local_source" options="tls,iam,ro" ;;
      backup) mount_point="$BACKUP_MOUNT" fs_id="$TASK_BACKUP_FILE_SYSTEM_ID" local_dir="$local_backup" options="tls,iam" ;;
      backup-ro) mount_point="$BACKUP_MOUNT" fs_id="$TASK_BACKUP_FILE_SYSTEM_ID" local_dir="$local_backup" options="tls,iam,ro" ;;
      backup-state)
        mount_point="$STATE_MOUNT" fs_id="$TASK_BACKUP_FILE_SYSTEM_ID" local_dir="$local_backup$state_path"
        fs_path="$state_path" options="tls,iam"
        ;;
      target)
        mount_point="$TARGET_MOUNT" fs_id="$RESTORE_TARGET_FS" options="tls,iam" local_dir="$local_source"
        [[ "$fs_id" == "$TASK_SOURCE_FILE_SYSTEM_ID" ]] || local_dir="$local_other"
        ;;
      *) echo "mount_filesystems: unknown file system $which" >&2; return 1 ;;
    esac
    mkdir -p "$mount_point"
    if [[ -n "${EFS_BACKUP_LOCAL_MOUNTS:-}" ]]; then
      log "mount seam: binding $local_dir at $mount_point ($which)"
      mount --rbind "$local_dir" "$mount_point" || { log "binding $local_dir failed ($which)"; return 1; }
      MOUNTED+=("$mount_point")
      if [[ "$options" == *,ro ]]; then
        mount -o remount,bind,ro "$mount_point" || { log "making $mount_point read-only failed"; return 1; }
      fi
    else
      log "mounting $fs_id:$fs_path at $mount_point (-o $options)"
      mount -t efs -o "$options" "$fs_id:$fs_path" "$mount_point" || { log "mounting $fs_id:$fs_path failed"; return 1; }
      MOUNTED+=("$mount_point")
    fi
    note_progress
  done
}

unmount_filesystems() {
  local index
  for ((index = ${#MOUNTED[@]} - 1; index >= 0; index--)); do
    umount "${MOUNTED[index]}" 2>/dev/null || umount -l "${MOUNTED[index]}" 2>/dev/null || true
  done
  MOUNTED=()
}

# amazon-efs-utils and rsync: installed with dnf from the Amazon Linux 2023 repositories (an S3 gateway endpoint or a
# NAT must reach them), unless the image has them (worker_image: the user data sets EFS_BACKUP_PACKAGES=preinstalled,
# and a missing package is then an error of the image, never a dnf call that would hang without a repository).
install_packages() {
  local missing=()
  command -v rsync >/dev/null 2>&1 || missing+=(rsync)
  if [[ -z "${EFS_BACKUP_LOCAL_MOUNTS:-}" ]] && ! command -v mount.efs >/dev/null 2>&1; then
    missing+=(amazon-efs-utils)
  fi
  if [[ "${#missing[@]}" -gt 0 && "${EFS_BACKUP_PACKAGES:-}" == preinstalled ]]; then
    log "the worker image (worker_image) lacks ${missing[*]}; it must have them preinstalled"
    return 1
  fi
  if [[ "${#missing[@]}" -gt 0 ]]; then
    log "installing ${missing[*]} from the distribution repositories"
    dnf install -y -q "${missing[@]}"
  fi
  note_progress
}

# ---------------------------------------------------------------------------------------------- engine steps

# Runs the engine; its last stdout line (JSON) lands in ENGINE_OUTPUT, its exit code is returned.
engine() {
  local output status=0
  note_progress
  output="$(python3 "$ENGINE" "$@")" || status=$?
  note_progress
  ENGINE_OUTPUT="$(printf '%s\n' "$output" | tail -n 1)"
  return "$status"
}

# The error name a worker reports for an engine exit code (efs_backup_contract.exits; EngineExit<N> if even python3
# cannot run).
engine_error_name() {
  helper error-name "$1" || echo "EngineExit$1"
}

# prepare's and restore-prepare's share of the work: the run's streams in all (every worker runs TASK_STREAMS) and
# the streams per worker.
stream_options() {
  STREAM_OPTIONS=(--workers "$((TASK_WORKER_COUNT * TASK_STREAMS))" --streams-per-worker "$TASK_STREAMS")
}

run_work() {
  local status=0
  stream_options
  mount_filesystems source backup
  engine init --backup-root "$BACKUP_MOUNT" || {
    status=$?; report_failure "$(engine_error_name "$status")" "init of the backup root failed (exit $status)"; return
  }
  engine prepare --source "$SOURCE_MOUNT" --backup-root "$BACKUP_MOUNT" --id "$TASK_BACKUP_ID" \
    --interval "$TASK_INTERVAL" --retain "$TASK_RETAIN" "${STREAM_OPTIONS[@]}" \
    --run-id "$TASK_RUN_ID" --require-mountpoint || status=$?
  if [[ "$status" -ne 0 ]]; then
    report_failure "$(engine_error_name "$status")" "prepare of run $TASK_RUN_ID failed (exit $status); see $TASK_LOG_GROUP"
    return
  fi
  log "prepared: $ENGINE_OUTPUT"
  engine work --backup-root "$BACKUP_MOUNT" --id "$TASK_BACKUP_ID" --interval "$TASK_INTERVAL" \
    --source "$SOURCE_MOUNT" --worker-id "w$TASK_WORKER_INDEX" --streams "$TASK_STREAMS" --require-mountpoint ||
    status=$?
  case "$status" in
    0 | 2) report_success "$ENGINE_OUTPUT" ;;
    1) report_failure EngineWorkFailed "worker w$TASK_WORKER_INDEX: failed parts: $(failed_parts_of "$ENGINE_OUTPUT")" ;;
    *) report_failure "$(engine_error_name "$status")" "work of worker w$TASK_WORKER_INDEX failed (exit $status)" ;;
  esac
}

failed_parts_of() {
  printf '%s' "$1" | helper failed-parts || echo "(unreadable engine output)"
}

run_finalize() {
  local status=0
  mount_filesystems backup
  engine finalize --backup-root "$BACKUP_MOUNT" --id "$TASK_BACKUP_ID" --interval "$TASK_INTERVAL" \
    --run-id "$TASK_RUN_ID" --json || status=$?
  # 0/2: promoted. 1 with a summary: the run failed and the engine recorded it; the summary is the result.
  if [[ "$status" -le 2 && "$ENGINE_OUTPUT" == "{"* ]]; then
    report_success "$ENGINE_OUTPUT"
  else
    report_failure "$(engine_error_name "$status")" "finalize of run $TASK_RUN_ID failed (exit $status)"
  fi
}

run_abort() {
  local status=0
  local reason="run $TASK_RUN_ID stopped before finalize: a worker timed out, was lost, failed to launch or was refused"
  mount_filesystems backup
  # The engine records the failure (the reason plus every failed or unfinished part) and prints it as JSON:
  # it becomes the run's summary in the notification and the run-history table.
  engine abort --backup-root "$BACKUP_MOUNT" --id "$TASK_BACKUP_ID" --interval "$TASK_INTERVAL" \
    --run-id "$TASK_RUN_ID" --reason "$reason" --json || status=$?
  if [[ "$status" -eq 0 && "$ENGINE_OUTPUT" == "{"* ]]; then
    report_success "$ENGINE_OUTPUT"
  else
    report_failure "$(engine_error_name "$status")" "abort of run $TASK_RUN_ID failed (exit $status)"
  fi
}

# --------------------------------------------------------------------------------------------- restore steps

RESTORE_TARGET_FS=""
RESTORE_TARGET_DIR=""
RESTORE_DEFAULT_PARENT=""
RESTORE_DRY_RUN=""
RESTORE_ARGS=()
RESTORE_REFUSAL=""

# Turns the restore request (JSON text from the task) into the target file system, the target directory under its
# mount point, the default target's parent ("" unless the request names no target_path), whether it is a dry run
# and the engine's selection options. efs_backup_worker.restore_request checks every field (an unknown one refuses
# the request: a misspelt "dry_run" never restores for real); values come back NUL-separated and are only ever
# passed on as single arguments, never interpreted by the shell. A refused request returns 3 and leaves the reason
# in RESTORE_REFUSAL.
parse_restore_request() {
  local fields=() refusal_file="$LOG_DIR/restore-request.refused"
  mapfile -d '' fields < <(printf '%s' "$TASK_REQUEST" |
    helper restore-request "$TASK_SOURCE_FILE_SYSTEM_ID" "$TASK_RUN_ID" 2>"$refusal_file")
  if [[ "${#fields[@]}" -lt 4 ]]; then # refused: nothing printed
    RESTORE_REFUSAL="$(cat "$refusal_file")"
    log "$RESTORE_REFUSAL"
    return 3
  fi
  RESTORE_TARGET_FS="${fields[0]}"
  RESTORE_TARGET_DIR="$TARGET_MOUNT${fields[1]:+/${fields[1]}}"
  RESTORE_DEFAULT_PARENT="${fields[2]}"
  RESTORE_DRY_RUN="${fields[3]}"
  RESTORE_ARGS=("${fields[@]:4}")
}

# The restore steps' common options: the snapshots read-only, the state directory read-write.
restore_roots() {
  printf '%s\0' --backup-root "$BACKUP_MOUNT" --state-dir "$STATE_MOUNT" --id "$TASK_BACKUP_ID"
}

mount_backup_for_restore() {
  if ! mount_filesystems backup-ro; then
    report_failure WorkerFailed "the backup file system could not be mounted read-only; see $TASK_LOG_GROUP"
    return 1
  fi
  if [[ ! -d "$BACKUP_MOUNT/$TASK_BACKUP_ID/.efs-backup" ]]; then
    report_failure EngineRefused "nothing to restore: the backup file system holds no backup of $TASK_BACKUP_ID"
    return 1
  fi
  # The lock lives there: without this mount a restore must not start (the engine checks it is the same directory).
  if ! mount_filesystems backup-state || ! mountpoint -q "$STATE_MOUNT"; then
    report_failure WorkerFailed "the backup-id's state directory could not be mounted read-write; see $TASK_LOG_GROUP"
    return 1
  fi
}

run_restore_work() {
  local status=0 roots=()
  stream_options
  if ! parse_restore_request; then
    report_failure EngineRefused "the restore request was refused: ${RESTORE_REFUSAL:-see $TASK_LOG_GROUP}"
    return
  fi
  mount_backup_for_restore || return
  if ! mount_filesystems target; then
    report_failure WorkerFailed "the target file system $RESTORE_TARGET_FS could not be mounted; see $TASK_LOG_GROUP"
    return
  fi
  # The default target is a new directory under /efs-backup-restore (root only until an operator moves it);
  # a dry run creates nothing.
  if [[ -n "$RESTORE_DEFAULT_PARENT" && -z "$RESTORE_DRY_RUN" ]]; then
    mkdir -m 0700 "$TARGET_MOUNT/$RESTORE_DEFAULT_PARENT" 2>/dev/null || [[ -d "$TARGET_MOUNT/$RESTORE_DEFAULT_PARENT" ]]
  fi
  mapfile -d '' roots < <(restore_roots)
  engine restore-prepare "${roots[@]}" --target "$RESTORE_TARGET_DIR" "${RESTORE_ARGS[@]}" \
    "${STREAM_OPTIONS[@]}" --run-id "$TASK_RUN_ID" --require-mountpoint || status=$?
  if [[ "$status" -ne 0 ]]; then
    report_failure "$(engine_error_name "$status")" "restore-prepare of run $TASK_RUN_ID failed (exit $status); see $TASK_LOG_GROUP"
    return
  fi
  log "prepared: $ENGINE_OUTPUT"
  engine restore-work "${roots[@]}" --target "$RESTORE_TARGET_DIR" --worker-id "w$TASK_WORKER_INDEX" \
    --streams "$TASK_STREAMS" --require-mountpoint || status=$?
  case "$status" in
    0 | 2) report_success "$ENGINE_OUTPUT" ;;
    1) report_failure EngineWorkFailed "worker w$TASK_WORKER_INDEX: failed parts: $(failed_parts_of "$ENGINE_OUTPUT")" ;;
    *) report_failure "$(engine_error_name "$status")" "restore-work of worker w$TASK_WORKER_INDEX failed (exit $status)" ;;
  esac
}

run_restore_finalize() {
  local status=0 roots=()
  mount_backup_for_restore || return
  mapfile -d '' roots < <(restore_roots)
  engine restore-finalize "${roots[@]}" --run-id "$TASK_RUN_ID" --json || status=$?
  # 0/2: restored. 1 with a summary: the restore failed and the engine recorded it; the summary is the result.
  if [[ "$status" -le 2 && "$ENGINE_OUTPUT" == "{"* ]]; then
    report_success "$ENGINE_OUTPUT"
  else
    report_failure "$(engine_error_name "$status")" "restore-finalize of run $TASK_RUN_ID failed (exit $status)"
  fi
}

run_restore_abort() {
  local status=0 roots=()
  local reason="restore $TASK_RUN_ID stopped before finalize: a worker timed out, was lost, failed to launch or was refused"
  mount_backup_for_restore || return
  mapfile -d '' roots < <(restore_roots)
  engine restore-abort "${roots[@]}" --run-id "$TASK_RUN_ID" --reason "$reason" --json || status=$?
  if [[ "$status" -eq 0 && "$ENGINE_OUTPUT" == "{"* ]]; then
    report_success "$ENGINE_OUTPUT"
  else
    report_failure "$(engine_error_name "$status")" "restore-abort of run $TASK_RUN_ID failed (exit $status)"
  fi
}

# ------------------------------------------------------------------------------------------------- the end

# The log streams to CloudWatch Logs while the worker runs (a worker that dies keeps what it logged): a background
# loop ships the new complete lines every heartbeat period (30..60 s), at most LOG_BATCHES_PER_TICK batches a tick
# (efs_backup_worker.log_batches cuts them within the PutLogEvents limits); the exit trap stops it and flushes the
# rest. The offset file holds how many bytes of the log are shipped: it moves only after a put succeeded, so
# nothing is skipped, and nothing is sent twice (unless a put succeeds and its answer is lost).
LOG_BATCHES_PER_TICK=10

log_stream() {
  printf '%s/%s-%s' "$TASK_RUN_ID" "$TASK_ROLE" "$TASK_WORKER_INDEX"
}

# Ships up to $1 batches of unshipped lines (only complete lines unless $2 is "final"). Returns 1 if a put failed.
ship_log_batches() {
  local max_batches="$1" final="${2:-}" batch=0 next count options=()
  local offsets="$LOG_DIR/shipped.offset" events="$LOG_DIR/events.json"
  [[ "$final" != final ]] || options+=(--final)
  while ((batch < max_batches)); do
    read -r next count < <(helper log-batch "$LOG_FILE" "$offsets" "$events" "${options[@]}") || return 1
    [[ "${count:-0}" -gt 0 ]] || return 0
    aws logs put-log-events --region "$TASK_REGION" --log-group-name "$TASK_LOG_GROUP" \
      --log-stream-name "$(log_stream)" --log-events "file://$events" >/dev/null 2>&1 || return 1
    printf '%s\n' "$next" >"$offsets"
    batch=$((batch + 1))
  done
}

create_log_stream() {
  aws logs create-log-stream --region "$TASK_REGION" --log-group-name "$TASK_LOG_GROUP" \
    --log-stream-name "$(log_stream)" >/dev/null 2>&1 || true
}

# Starts the background shipper; its first tick is at once, so the bootstrap shows up before any work starts.
start_log_shipper() {
  # Every heartbeat period, kept within 30..60 s (log calls must never crowd out heartbeats).
  local period=$((TASK_HEARTBEAT_SECONDS < 30 ? 30 : (TASK_HEARTBEAT_SECONDS > 60 ? 60 : TASK_HEARTBEAT_SECONDS)))
  create_log_stream
  (
    stopping="" sleeper=""
    trap 'stopping=1; [[ -n "$sleeper" ]] && kill "$sleeper" 2>/dev/null' TERM
    while [[ -z "$stopping" ]]; do
      ship_log_batches "$LOG_BATCHES_PER_TICK" || true
      [[ -n "$stopping" ]] && break
      sleep "$period" &
      sleeper=$!
      wait "$sleeper" 2>/dev/null || true
      sleeper=""
    done
  ) &
  LOG_SHIPPER_PID=$!
}

# Stops the shipper after its current put (it finishes the call in flight; a hung one is cut after 30 s).
stop_log_shipper() {
  local waited=0
  [[ -n "$LOG_SHIPPER_PID" ]] || return 0
  kill -TERM "$LOG_SHIPPER_PID" 2>/dev/null || true
  while kill -0 "$LOG_SHIPPER_PID" 2>/dev/null && ((waited < 300)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  kill -KILL "$LOG_SHIPPER_PID" 2>/dev/null || true
  wait "$LOG_SHIPPER_PID" 2>/dev/null || true
  LOG_SHIPPER_PID=""
}

ship_log() {
  stop_log_shipper
  sleep 0.2 # let tee write the last lines
  ship_log_batches 100 final || log "could not ship the rest of the log"
}

power_off() {
  if [[ -n "${EFS_BACKUP_LOCAL_MOUNTS:-}" ]]; then
    log "mount seam active: not powering off"
    return 0
  fi
  log "powering off (instance shutdown behaviour: terminate)"
  systemctl poweroff || shutdown -h now
}

on_exit() {
  local status=$?
  set +e
  stop_heartbeat
  if [[ -z "$REPORTED" && -n "${TASK_TASK_TOKEN:-}" ]]; then
    report_failure WorkerFailed "worker.sh (${TASK_ROLE:-?}, w${TASK_WORKER_INDEX:-?}) stopped unexpectedly (exit $status)"
  fi
  unmount_filesystems
  [[ -n "${TASK_LOG_GROUP:-}" && -n "${TASK_RUN_ID:-}" ]] && ship_log
  power_off
}

on_signal() {
  log "terminated by a signal"
  exit 143
}

main() {
  local pointer_file="${1:?usage: worker.sh POINTER_FILE}" task_file="$EFS_BACKUP_HOME/task.json"
  mkdir -p "$LOG_DIR"
  exec > >(tee -a "$LOG_FILE") 2>&1
  trap on_exit EXIT
  trap on_signal TERM INT
  fetch_task "$pointer_file" "$task_file"
  read_task_file "$task_file"
  log "role $TASK_ROLE, run $TASK_RUN_ID, backup-id $TASK_BACKUP_ID, ${TASK_INTERVAL:-restore} (retain ${TASK_RETAIN:--}), worker $TASK_WORKER_INDEX of $TASK_WORKER_COUNT${TASK_STREAMS:+ ($TASK_STREAMS streams)}"
  start_heartbeat
  start_log_shipper
  install_packages
  case "$TASK_ROLE" in
    work) run_work ;;
    finalize) run_finalize ;;
    abort) run_abort ;;
    restore-work) run_restore_work ;;
    restore-finalize) run_restore_finalize ;;
    restore-abort) run_restore_abort ;;
  esac
}

# Sourced (tests/contract checks its functions against efs_backup_contract), it only defines them.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  main "$@"
fi
