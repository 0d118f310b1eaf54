"""Run notifications: one encrypted SNS topic, optional e-mail subscriptions.

The topic is encrypted with the AWS-managed key ``alias/aws/sns`` (its key policy lets principals of this account use
it through SNS, so the state machine needs no KMS grant) and accepts only TLS publishers. Failures always publish;
successes only when ``notify_on_success`` is set (the state machine decides, see backup_workflow.py).
"""

from __future__ import annotations

from typing import Sequence

from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, display_name: str, emails: Sequence[str]) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=display_name[:100],
            master_key=kms.Alias.from_alias_name(self, "AwsManagedSnsKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
