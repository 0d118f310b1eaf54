"""cdk-nag (AwsSolutions, v3 policy-validation plugin): live, enforced at synth, and every acknowledgment earned."""

from __future__ import annotations

from typing import Dict, Set, Tuple

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

from cdk_helpers import shipped_environments

NAG_PREFIX = "AwsSolutions::"


def canary_app(register_plugin: bool) -> cdk.App:
    app = cdk.App()
    stack = cdk.Stack(app, "Canary", env=cdk.Environment(account="111111111111", region="us-east-1"))
    s3.Bucket(stack, "PlainBucket")  # no access logs, no TLS-only policy
    if register_plugin:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def test_canary_checker_reports_findings():
    report = AwsSolutionsChecks().validate_scope(canary_app(register_plugin=False))
    assert report.success is False
    rules = {violation.rule_name for violation in report.violations}
    assert {"AwsSolutions-S1", "AwsSolutions-S10"} <= rules


def test_canary_synth_fails_on_an_unacknowledged_finding():
    app = canary_app(register_plugin=True)
    with pytest.raises(Exception, match=r"ValidationFailed(.|\n)*AwsSolutions::AwsSolutions-S1"):
        app.synth()


def test_canary_acknowledged_finding_passes_synth():
    app = cdk.App()
    stack = cdk.Stack(app, "Canary", env=cdk.Environment(account="111111111111", region="us-east-1"))
    bucket = s3.Bucket(stack, "Bucket", enforce_ssl=True)
    cdk.Validations.of(bucket.node.default_child).acknowledge(
        cdk.Acknowledgment(id=f"{NAG_PREFIX}AwsSolutions-S1", reason="canary: access logs are out of scope here")
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


def acknowledgments(app: cdk.App) -> Dict[Tuple[str, str], str]:
    """(construct path, acknowledged id) -> reason, from the metadata ``Validations.acknowledge`` records."""
    found = {}
    for construct in app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule_id, reason in entry.data.items():
                    found[(construct.node.path, rule_id)] = reason
    return found


@pytest.mark.parametrize("env", shipped_environments())
def test_shipped_environments_synthesize_nag_clean_with_each_finding_acknowledged_where_it_occurs(env, synthesized):
    # synthesized() ran app.synth() with the plugin registered, which raises on any unacknowledged finding.
    # validate_scope() reports the raw findings (acknowledgments are applied by the CDK's validation framework):
    # they must be exactly the acknowledged (construct, finding) pairs, so no acknowledgment is stale or too broad.
    app = synthesized(env).app
    acked = acknowledgments(app)
    nag_acks = {(path, rule[len(NAG_PREFIX):]) for (path, rule) in acked if rule.startswith(NAG_PREFIX)}
    report = AwsSolutionsChecks().validate_scope(app)
    findings: Set[Tuple[str, str]] = {
        (resource.construct_path, violation.rule_name)
        for violation in report.violations
        for resource in violation.violating_resources
    }
    assert findings == nag_acks
    for (path, rule), reason in acked.items():
        assert len(reason) >= 60, f"{path} {rule}: a reviewer needs a real reason, got {reason!r}"


def test_acknowledgments_sit_on_the_narrowest_constructs(synthesized):
    paths = {path for (path, _) in acknowledgments(synthesized("example").app)}
    assert paths
    for path in paths:
        # L1 resources (".../Resource") or the imported subnets: never a stack, a construct tree or the app.
        assert path.endswith("/Resource") or "/Vpc/PrivateSubnet" in path, path
