"""Run metrics: ASL states that publish one backup run's figures to CloudWatch and record the newest snapshot.

``RunMetrics.states(entry, next_state, path)`` returns plain ASL states (JSONPath) to splice into the backup state
machine, and ``RunMetrics.grant(role)`` gives that state machine's role exactly what they call. Monitoring must never
fail a backup: every task retries briefly and then Catches everything and continues, and every value a task reads is
checked first with a Choice (``IsPresent`` before any type or value test), so a missing field can never raise
``States.Runtime`` (which no Catch handles).

What the states read from the execution state:

* ``$.interval`` (string, e.g. ``daily``): the ``Interval`` dimension. Without it the fragment does nothing.
* ``$.summary``: the engine's run summary (``summary.build`` in the engine, plus ``snapshot``/``snapshot_id`` after
  a promotion). It may be ``{}``, ``null`` or lack fields (failure path); each group of metrics is published only
  when all of its fields are there:

  - ``status`` (success path: ``success``/``warning`` count as a succeeded run, anything else as failed);
  - ``duration_seconds``, ``totals.files_scanned``, ``totals.files_transferred``, ``totals.bytes_transferred``,
    ``warnings``, ``failed_count``: the run figures;
  - ``part_stats.{seconds,files_scanned,bytes_transferred}.{count,sum,min,max}``: the part statistic sets (only
    when ``count`` >= 1);
  - ``snapshot``, ``snapshot_id``, ``finished_epoch``, ``finished_iso``: the newest-snapshot record (success only).

* ``$$.Execution.Name`` (the run id) for the newest-snapshot record.

Nothing else: not ``$.backup_id`` (a constant of the construct, so the dimension cannot be wrong), ``$.run_id``
(the execution name is read from the context), ``$.started`` or ``$.error``, so the fragments work at any point
after ``$.interval`` is validated. ``finished_epoch`` and ``part_stats`` come from the engine of this version on; a
summary without them (an execution that started on an older engine) publishes the rest and records no newest
snapshot.

What they write: only ``$.run_metrics`` (the outcome counters and each task's small result or caught error).

Metrics (namespace ``EfsBackup``, dimensions ``BackupId`` and ``Interval``), one datapoint per run:
RunsSucceeded / RunsFailed (1 and 0), RunDurationSeconds, FilesScanned, FilesTransferred, BytesTransferred, Warnings,
FailedParts, and the statistic sets PartDurationSeconds, PartFilesScanned, PartBytesTransferred (one sample per part).

Newest snapshot (success path, a promoted snapshot only): a PutItem into the run-history table under partition key
``backup_id`` = ``<backup-id>#latest`` and sort key ``run`` = ``<interval>`` (a Query of ``backup_id = <backup-id>``
never sees it), with ``finished`` (N, epoch seconds), ``finished_iso``, ``snapshot``, ``snapshot_id``, ``status``
and ``execution``. The monitoring publisher reads it to publish ``NewestSnapshotTimestamp`` (see monitoring.py).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from constructs.nag import NAG_PACK
from efs_backup_contract.deployment import METRIC_NAMESPACE

NAMESPACE = METRIC_NAMESPACE
LATEST_SUFFIX = "#latest"

# (metric name, path under $.summary, unit) of the per-run figures.
RUN_FIGURES = (
    ("RunDurationSeconds", "duration_seconds", "Seconds"),
    ("FilesScanned", "totals.files_scanned", "Count"),
    ("FilesTransferred", "totals.files_transferred", "Count"),
    ("BytesTransferred", "totals.bytes_transferred", "Bytes"),
    ("Warnings", "warnings", "Count"),
    ("FailedParts", "failed_count", "Count"),
)
# (metric name, key under $.summary.part_stats, unit) of the per-part statistic sets.
PART_FIGURES = (
    ("PartDurationSeconds", "seconds", "Seconds"),
    ("PartFilesScanned", "files_scanned", "Count"),
    ("PartBytesTransferred", "bytes_transferred", "Bytes"),
)
OUTCOME_METRICS = ("RunsSucceeded", "RunsFailed")
RUN_METRIC_NAMES = OUTCOME_METRICS + tuple(name for name, _, _ in RUN_FIGURES)
PART_METRIC_NAMES = tuple(name for name, _, _ in PART_FIGURES)
PATHS = ("success", "failure")

# Monitoring retries briefly and then gives up quietly: a run's outcome must not depend on CloudWatch.
_RETRY = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 2, "BackoffRate": 2}]


def latest_key(backup_id: str) -> str:
    """The partition key of the newest-snapshot items (``#`` cannot occur in a backup-id)."""
    return backup_id + LATEST_SUFFIX


def present(path: str, test: str, value: Any = True) -> List[Dict[str, Any]]:
    """Choice rules: ``path`` exists and passes ``test`` (IsPresent first, so a missing path never raises)."""
    return [{"Variable": path, "IsPresent": True}, {"Variable": path, test: value}]


class RunMetrics(Construct):
    """ASL fragments publishing run metrics, and the IAM policy they need (attached with ``grant``)."""

    def __init__(self, scope: Construct, construct_id: str, *, backup_id: str, table: dynamodb.ITable) -> None:
        super().__init__(scope, construct_id)
        self.backup_id = backup_id
        self.table = table
        self.policy: Optional[iam.Policy] = None  # created by grant()

    # ------------------------------------------------------------------------------------------------ states

    def dimensions(self) -> List[Dict[str, str]]:
        return [{"Name": "BackupId", "Value": self.backup_id}, {"Name": "Interval", "Value.$": "$.interval"}]

    def states(self, entry: str, next_state: str, path: str) -> Dict[str, Dict[str, Any]]:
        """The states of one fragment: enter at ``entry``, leave at ``next_state`` on every route.

        ``path`` is ``"success"`` (after the run is recorded; the summary's status decides whether the run counts
        as succeeded, and a promoted snapshot is recorded as the interval's newest) or ``"failure"`` (the run
        failed; RunsFailed = 1, plus whatever figures the summary holds). Every other state name starts with
        ``entry``, so the two fragments can live in one state machine.
        """
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, not {path!r}")
        name = {part: f"{entry}{part}" for part in (
            "Succeeded", "Failed", "HasFigures", "PutRun", "PutOutcome", "HasPartStats", "PutParts", "HasSnapshot",
            "RecordLatest")}
        after_parts = name["HasSnapshot"] if path == "success" else next_state
        dims = self.dimensions()

        def outcome(succeeded: int) -> Dict[str, Any]:
            return {"Type": "Pass", "Result": {"succeeded": succeeded, "failed": 1 - succeeded},
                    "ResultPath": "$.run_metrics", "Next": name["HasFigures"]}

        def task(resource: str, parameters: Dict[str, Any], result: str, following: str) -> Dict[str, Any]:
            return {
                "Type": "Task",
                "Resource": resource,
                "Parameters": parameters,
                "ResultSelector": {"done": True},
                "ResultPath": f"$.run_metrics.{result}",
                "Retry": _RETRY,
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": f"$.run_metrics.{result}_error",
                           "Next": following}],
                "Next": following,
            }

        def put_metrics(metric_data: List[Dict[str, Any]], result: str, following: str) -> Dict[str, Any]:
            return task("arn:aws:states:::aws-sdk:cloudwatch:putMetricData",
                        {"Namespace": NAMESPACE, "MetricData": metric_data}, result, following)

        outcome_data = [
            {"MetricName": metric, "Dimensions": dims, "Value.$": f"$.run_metrics.{key}", "Unit": "Count"}
            for metric, key in zip(OUTCOME_METRICS, ("succeeded", "failed"))
        ]
        figure_data = [
            {"MetricName": metric, "Dimensions": dims, "Value.$": f"$.summary.{field}", "Unit": unit}
            for metric, field, unit in RUN_FIGURES
        ]
        part_data = [
            {"MetricName": metric, "Dimensions": dims, "Unit": unit, "StatisticValues": {
                "SampleCount.$": f"$.summary.part_stats.{key}.count",
                "Sum.$": f"$.summary.part_stats.{key}.sum",
                "Minimum.$": f"$.summary.part_stats.{key}.min",
                "Maximum.$": f"$.summary.part_stats.{key}.max",
            }}
            for metric, key, unit in PART_FIGURES
        ]
        figures_present = [rule for _, field, _ in RUN_FIGURES for rule in present(f"$.summary.{field}", "IsNumeric")]
        parts_present = present("$.summary.part_stats.seconds.count", "IsNumeric") + [
            {"Variable": "$.summary.part_stats.seconds.count", "NumericGreaterThanEquals": 1},
        ] + [
            rule
            for _, key, _ in PART_FIGURES
            for stat in ("count", "sum", "min", "max")
            for rule in present(f"$.summary.part_stats.{key}.{stat}", "IsNumeric")
        ]

        states: Dict[str, Dict[str, Any]] = {}
        interval_ok = present("$.interval", "IsString")
        if path == "success":
            states[entry] = {
                "Type": "Choice",
                "Comment": "run metrics (monitoring: never fails the run); success or warning counts as succeeded",
                "Choices": [
                    {"Not": {"And": interval_ok}, "Next": next_state},
                    {"And": [*present("$.summary.status", "IsString"),
                             {"Or": [{"Variable": "$.summary.status", "StringEquals": "success"},
                                     {"Variable": "$.summary.status", "StringEquals": "warning"}]}],
                     "Next": name["Succeeded"]},
                ],
                "Default": name["Failed"],
            }
            states[name["Succeeded"]] = outcome(1)
        else:
            states[entry] = {
                "Type": "Choice",
                "Comment": "run metrics of a failed run (monitoring: never fails anything)",
                "Choices": [{"And": interval_ok, "Next": name["Failed"]}],
                "Default": next_state,
            }
        states[name["Failed"]] = outcome(0)
        states[name["HasFigures"]] = {
            "Type": "Choice",
            "Comment": "publish the run figures only when the summary has all of them",
            "Choices": [{"And": figures_present, "Next": name["PutRun"]}],
            "Default": name["PutOutcome"],
        }
        states[name["PutRun"]] = put_metrics(outcome_data + figure_data, "put_run", name["HasPartStats"])
        states[name["PutOutcome"]] = put_metrics(outcome_data, "put_outcome", name["HasPartStats"])
        states[name["HasPartStats"]] = {
            "Type": "Choice",
            "Comment": "per-part statistic sets, when at least one part finished",
            "Choices": [{"And": parts_present, "Next": name["PutParts"]}],
            "Default": after_parts,
        }
        states[name["PutParts"]] = put_metrics(part_data, "put_parts", after_parts)
        if path == "success":
            snapshot_present = [
                {"Variable": "$.run_metrics.succeeded", "NumericEquals": 1},
                *present("$.summary.snapshot", "IsString"),
                *present("$.summary.snapshot_id", "IsString"),
                *present("$.summary.finished_epoch", "IsNumeric"),
                *present("$.summary.finished_iso", "IsString"),
            ]
            states[name["HasSnapshot"]] = {
                "Type": "Choice",
                "Comment": "a promoted snapshot becomes the interval's newest (read by the snapshot-age publisher)",
                "Choices": [{"And": snapshot_present, "Next": name["RecordLatest"]}],
                "Default": next_state,
            }
            states[name["RecordLatest"]] = task(
                "arn:aws:states:::dynamodb:putItem",
                {"TableName": self.table.table_name, "Item": {
                    "backup_id": {"S": latest_key(self.backup_id)},
                    "run": {"S.$": "$.interval"},
                    "finished": {"N.$": "States.Format('{}', $.summary.finished_epoch)"},
                    "finished_iso": {"S.$": "$.summary.finished_iso"},
                    "snapshot": {"S.$": "$.summary.snapshot"},
                    "snapshot_id": {"S.$": "$.summary.snapshot_id"},
                    "status": {"S.$": "$.summary.status"},
                    "execution": {"S.$": "$$.Execution.Name"},
                }},
                "recorded_latest",
                next_state,
            )
        return states

    # ------------------------------------------------------------------------------------------------ permissions

    def statements(self) -> List[iam.PolicyStatement]:
        return [
            iam.PolicyStatement(
                sid="PublishRunMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": NAMESPACE}},
            ),
            iam.PolicyStatement(
                sid="RecordNewestSnapshot",
                actions=["dynamodb:PutItem"],
                resources=[self.table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [latest_key(self.backup_id)]}},
            ),
        ]

    def grant(self, role: iam.IRole) -> iam.Policy:
        """Attach a policy with exactly what the states call to ``role`` (the backup state machine's role)."""
        if self.policy is None:
            self.policy = iam.Policy(self, "Policy", statements=self.statements())
            Validations.of(self.policy.node.default_child).acknowledge(Acknowledgment(
                id=f"{NAG_PACK}AwsSolutions-IAM5[Resource::*]",
                reason="cloudwatch:PutMetricData has no resource-level permissions; the statement is limited to the "
                       f"{NAMESPACE} namespace by the cloudwatch:namespace condition.",
            ))
        self.policy.attach_to_role(role)
        return self.policy

