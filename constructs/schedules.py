"""EventBridge Scheduler schedules: one per interval that has a schedule, each starting the backup state machine.

The schedule's input is rendered from the same ``IntervalPolicy`` that holds the retention, so a schedule never
starts an unused interval; the retention itself is not in the input (the backup state machine has it built in). Flexible time window off (runs start on time), the
configured time zone, and the state ENABLED or DISABLED from ``schedules_enabled``. moto does not run schedules;
the tests assert them on the template.
"""

from __future__ import annotations

import json
from typing import Dict, Sequence

from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from settings.model import IntervalPolicy


def schedule_input(policy: IntervalPolicy, workers: int) -> Dict[str, object]:
    """The execution input a schedule sends (the same format as a run started by hand). No retention: the state
    machine has each interval's retention written into its definition."""
    return {"interval": policy.interval, "workers": workers}


class Schedules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine_arn: str,
        policies: Sequence[IntervalPolicy],
        workers: int,
        timezone: str,
        enabled: bool,
        name_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.schedules: Dict[str, scheduler.CfnSchedule] = {}
        scheduled = [p for p in policies if p.enabled and p.schedule]
        if not scheduled:
            return
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description="efs-backup schedules: start executions of the backup state machine",
        )
        self.role.add_to_principal_policy(iam.PolicyStatement(
            sid="StartBackupRuns", actions=["states:StartExecution"], resources=[state_machine_arn],
        ))
        for policy in scheduled:
            self.schedules[policy.interval] = scheduler.CfnSchedule(
                self,
                policy.interval.capitalize(),
                name=f"{name_prefix}-{policy.interval}"[:64],
                description=f"efs-backup: start a {policy.interval} run (retain {policy.retain})",
                schedule_expression=policy.schedule,
                schedule_expression_timezone=timezone,
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED" if enabled else "DISABLED",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=state_machine_arn,
                    role_arn=self.role.role_arn,
                    input=json.dumps(schedule_input(policy, workers), sort_keys=True),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=3),
                ),
            )
