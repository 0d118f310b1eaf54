"""The configuration parser: every kind of bad input fails with one message listing all problems."""

from __future__ import annotations

import dataclasses
import re

import pytest

from cdk_helpers import cdk_json_context, context_for, shipped_environments
from efs_backup_contract.limits import MAX_LINKED_TREES, MAX_STREAMS_PER_WORKER
from settings.keys import KEYS
from settings.load import load_config
from settings.model import (
    DEFAULT_WORKER_STREAMS,
    ConfigError,
    EfsBackupConfig,
    IntervalPolicy,
    KmsKeyChoice,
    MonitoringSettings,
    SubnetPlacement,
)

AZ_KEY = "availability-zones:account=123456789012:region=eu-west-1"


def valid_environment(**changes):
    environment = {
        "account": "123456789012",
        "region": "eu-west-1",
        "backup_id": "home",
        "vpc_id": "vpc-0123456789abcdef0",
        "vpc_cidr": "10.1.0.0/16",
        "subnets": {"subnet-0123456789abcdef0": "eu-west-1a", "subnet-0123456789abcdef1": "eu-west-1b"},
        "source_file_system_id": "fs-0123456789abcdef0",
        "source_mount_target_security_group_id": "sg-0123456789abcdef0",
        "source_client_security_group": "create",
        # The VPC's own endpoints serve the workers (S3 gateway: its prefix list; states and logs: private DNS).
        "existing_vpc_endpoints": ["s3", "states", "logs"],
        "worker_https_egress": ["10.1.0.0/16", "pl-6da54004"],
    }
    environment.update(changes)
    return {key: value for key, value in environment.items() if value is not ...}


def context(environment=None, env="test", **overrides):
    ctx = {
        "environments": {"test": environment if environment is not None else valid_environment(),
                         "other": valid_environment()},
        AZ_KEY: ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
        "env": env,
        # CDK's own context keys must be ignored, not reported as unknown configuration.
        "@aws-cdk/aws-efs:denyAnonymousAccess": True,
        "cli-telemetry": False,
        "aws:cdk:enable-path-metadata": True,
    }
    if env is None:
        del ctx["env"]
    ctx.update(overrides)
    return ctx


def problems_of(ctx):
    with pytest.raises(ConfigError) as raised:
        load_config(ctx)
    return raised.value.problems, str(raised.value)


def single_problem(ctx):
    problems, _ = problems_of(ctx)
    assert len(problems) == 1, problems
    return problems[0]


# ------------------------------------------------------------------------------------------------ valid input


def test_valid_environment_parses_into_a_frozen_typed_config():
    config = load_config(context())
    assert isinstance(config, EfsBackupConfig)
    assert config.environment == "test"
    assert config.stack_name == "EfsBackup-test"
    assert config.subnets == (
        SubnetPlacement("subnet-0123456789abcdef0", "eu-west-1a"),
        SubnetPlacement("subnet-0123456789abcdef1", "eu-west-1b"),
    )
    assert config.source_client_security_group_id is None and config.creates_source_client_security_group
    assert config.worker_https_egress == ("10.1.0.0/16", "pl-6da54004")  # the VPC CIDR and the S3 prefix list
    fs = config.backup_file_system
    assert (fs.performance_mode, fs.throughput_mode, fs.provisioned_throughput_mibps) == ("generalPurpose", "elastic", None)
    assert fs.kms_key == KmsKeyChoice("aws-managed")
    assert (fs.transition_to_ia_days, fs.transition_to_archive_days, fs.automatic_backups) == (30, None, False)
    assert config.retention == (
        IntervalPolicy("hourly", 0), IntervalPolicy("daily", 7, "cron(0 2 * * ? *)"),
        IntervalPolicy("weekly", 4, "cron(0 4 ? * SUN *)"), IntervalPolicy("monthly", 12, "cron(0 6 1 * ? *)"),
    )
    assert config.workers.count == 1 and config.workers.architecture == "x86_64"
    assert config.schedules_enabled and config.schedule_timezone == "UTC"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.backup_id = "other"  # type: ignore[misc]


def test_command_line_overrides_arrive_as_strings_and_are_coerced():
    config = load_config(context(
        retain_daily="14",
        retain_hourly="0",
        backup_automatic_backups="true",
        backup_throughput_mode="provisioned",
        backup_provisioned_throughput_mibps="128",
        backup_transition_to_ia_days="none",
        subnets="subnet-0123456789abcdef0:eu-west-1c",
        worker_https_egress="10.1.0.0/16, pl-6da54004",
        backup_kms_key="arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        source_client_security_group="sg-0123456789abcdef1",
        stack_name="BackupsHome",
    ))
    assert config.retention_for("daily").retain == 14
    assert config.backup_file_system.automatic_backups is True
    assert config.backup_file_system.provisioned_throughput_mibps == 128
    assert config.backup_file_system.transition_to_ia_days is None
    assert config.subnets == (SubnetPlacement("subnet-0123456789abcdef0", "eu-west-1c"),)
    assert config.worker_https_egress == ("10.1.0.0/16", "pl-6da54004")
    assert config.backup_file_system.kms_key.mode == "existing"
    assert config.source_client_security_group_id == "sg-0123456789abcdef1"
    assert config.stack_name == "BackupsHome"


@pytest.mark.parametrize("env", shipped_environments())
def test_shipped_environments_are_valid(env):
    config = load_config(context_for(env))
    assert config.environment == env


def test_example_environment_carries_the_old_walkthrough_values():
    config = load_config(context_for("example"))
    assert config.source_file_system_id == "fs-12345678"
    assert config.subnet_ids == ("subnet-abcd1234",)
    assert config.source_mount_target_security_group_id == "sg-1111111a"
    assert config.source_client_security_group_id == "sg-1111111b"
    assert config.account == "111111111111"


def test_a_realistic_environment_spans_two_zones_and_covers_the_created_variants():
    variants = [load_config(context_for(env)) for env in shipped_environments()]
    assert any(len(set(c.availability_zones)) >= 2 for c in variants)
    assert any(c.creates_source_client_security_group for c in variants)
    assert any(not c.creates_source_client_security_group for c in variants)
    assert any(c.backup_file_system.kms_key.mode == "create" for c in variants)
    assert any(c.backup_file_system.kms_key.mode == "aws-managed" for c in variants)


def test_every_shipped_environment_has_its_zone_list_in_cdk_json():
    ctx = cdk_json_context()
    for env in shipped_environments():
        settings = ctx["environments"][env]
        assert f"availability-zones:account={settings['account']}:region={settings['region']}" in ctx


# ------------------------------------------------------------------------------------ selecting an environment


def test_missing_env_names_the_available_environments():
    problem = single_problem(context(env=None))
    assert problem.startswith("env: no environment selected")
    assert "-c env=<name>" in problem and "other, test" in problem


def test_unknown_env_names_the_available_environments():
    problem = single_problem(context(env="prod"))
    assert problem == "env: 'prod' is not a known environment; expected one of: other, test"


def test_cdk_json_without_environments_is_reported():
    problem = single_problem({"env": "x"})
    assert problem.startswith("environments: None is not a mapping")


# ----------------------------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("source_file_system_id", "fs-123",
         "source_file_system_id: 'fs-123' is not an EFS id (fs- followed by 8 or 17 hex digits)"),
        ("source_file_system_id", "fs-1234567G", "'fs-1234567G' is not an EFS id"),
        ("vpc_id", "vpc-xyz", "vpc_id: 'vpc-xyz' is not a VPC id (vpc- followed by 8 or 17 hex digits)"),
        ("source_mount_target_security_group_id", "sg-12",
         "source_mount_target_security_group_id: 'sg-12' is not a security group id"),
        ("source_client_security_group", "sg-nothex1", "source_client_security_group: 'sg-nothex1' is not a security "
         "group id or 'create'"),
        ("account", "11111111111", "account: '11111111111' is not an AWS account id (12 digits, as a string)"),
        ("account", 111111111111, "account: 111111111111 is a number; expected 12 digits, as a string"),
        ("region", "Europe", "region: 'Europe' is not an AWS region (e.g. us-east-1)"),
        ("vpc_cidr", "10.1.0.0/33", "vpc_cidr: '10.1.0.0/33' is not a CIDR block"),
        ("vpc_cidr", "10.1.0.1/16", "vpc_cidr: '10.1.0.1/16' is not a CIDR block"),
        ("backup_id", "../etc", "backup_id: '../etc' is not a backup id"),
        ("backup_id", "a b", "backup_id: 'a b' is not a backup id"),
        ("stack_name", "1stack", "stack_name: '1stack' is not a stack name"),
        ("subnets", {}, "subnets: {} names no subnet"),
        ("subnets", "subnet-0123abcd", "subnets: 'subnet-0123abcd' is not a subnet mapping"),
        ("subnets", {"subnet-zz": "eu-west-1a"}, "subnets: 'subnet-zz' is not a subnet id"),
        ("subnets", {"subnet-0123abcd": "eu-west-1a", "subnet-4567abcd": "eu-west-1a"},
         "subnets: more than one subnet in eu-west-1a; expected one subnet per availability zone"),
        ("subnets", ["subnet-0123abcd"], "subnets: ['subnet-0123abcd'] is not a subnet mapping"),
        ("backup_performance_mode", "fast", "backup_performance_mode: 'fast' is not a valid choice; expected one of "
         "generalPurpose, maxIO"),
        ("backup_throughput_mode", "ELASTIC", "backup_throughput_mode: 'ELASTIC' is not a valid choice"),
        ("backup_kms_key", "alias/aws/elasticfilesystem", "backup_kms_key: 'alias/aws/elasticfilesystem' is not a key "
         "choice; expected 'aws-managed', 'create' or a KMS key ARN"),
        ("backup_transition_to_ia_days", 10, "backup_transition_to_ia_days: 10 is not a transition EFS supports; "
         "expected none or one of 1, 7, 14, 30, 60, 90, 180, 270, 365 (days)"),
        ("backup_transition_to_ia_days", "thirty", "backup_transition_to_ia_days: 'thirty' is not a number of days"),
        ("backup_automatic_backups", "yes", "backup_automatic_backups: 'yes' is not a boolean; expected true or false"),
        ("backup_automatic_backups", 1, "backup_automatic_backups: 1 is not a boolean"),
        ("worker_https_egress", "", "worker_https_egress: '' is empty"),
        ("worker_https_egress", ["10.0.0.0/8", "example.com"], "worker_https_egress: 'example.com' is neither a CIDR "
         "block nor a prefix list id"),
        ("worker_https_egress", ["10.0.0.0/8", "10.0.0.0/8"], "lists a destination twice"),
        ("script_noncurrent_version_expiration_days", 0, "script_noncurrent_version_expiration_days: 0 is out of "
         "range; expected a whole number from 1 to 3650"),
        ("access_log_retention_days", 7.5, "access_log_retention_days: 7.5 is not a whole number; expected a whole "
         "number from 1 to 3650"),
        ("retain_daily", -1, "retain_daily: -1 is out of range; expected a whole number from 0 to 169"),
        ("retain_daily", True, "retain_daily: True is a boolean; expected a whole number from 0 to 169"),
        ("retain_daily", None, "retain_daily: None is not a whole number"),
    ],
)
def test_bad_values_name_key_value_and_expectation(key, value, expected):
    problem = single_problem(context(valid_environment(**{key: value})))
    assert expected in problem


@pytest.mark.parametrize(
    "value, expected",
    [
        ("seven", "retain_daily: 'seven' is not a whole number; expected a whole number from 0 to 169"),
        ("7.0", "retain_daily: '7.0' is not a whole number"),
        (" 7", "retain_daily: ' 7' is not a whole number"),
        ("7d", "retain_daily: '7d' is not a whole number"),
        ("", "retain_daily: '' is not a whole number"),
        ("170", "retain_daily: '170' is out of range; expected a whole number from 0 to 169"),
    ],
)
def test_strings_for_ints_from_the_command_line_are_coerced_strictly(value, expected):
    assert single_problem(context(retain_daily=value)).startswith(expected)


@pytest.mark.parametrize("value", ["True", "1", "yes", "on", ""])
def test_strings_for_bools_from_the_command_line_are_coerced_strictly(value):
    problem = single_problem(context(backup_automatic_backups=value))
    assert problem == f"backup_automatic_backups: {value!r} is not a boolean; expected true or false"


def test_missing_required_keys_are_each_reported():
    environment = valid_environment(vpc_id=..., source_file_system_id=...)
    problems, _ = problems_of(context(environment))
    assert any(p.startswith("vpc_id: missing; expected string") for p in problems)
    assert any(p.startswith("source_file_system_id: missing") for p in problems)
    assert len(problems) == 2


# ---------------------------------------------------------------------------------------------- unknown keys


def test_unknown_key_in_cdk_json_environment_is_an_error():
    problem = single_problem(context(valid_environment(retain_dialy=3)))
    assert problem.startswith("retain_dialy: unknown key in cdk.json environment 'test'")


def test_unknown_command_line_key_is_an_error():
    problem = single_problem(context(backupid="x"))
    assert problem.startswith("backupid: unknown key given as context (-c)")


def test_kebab_case_spelling_of_a_key_gets_a_hint():
    problem = single_problem(context(**{"retain-daily": "3"}))
    assert "(did you mean 'retain_daily'?)" in problem


def test_cdk_context_keys_are_not_configuration():
    load_config(context(**{"@aws-cdk/core:newStyleStackSynthesis": True, "acknowledged-issue-numbers": [1],
                           "availability-zones:account=1:region=x": []}))


# ----------------------------------------------------------------------------------------- rules between keys


def test_maxio_with_elastic_throughput_is_rejected():
    problem = single_problem(context(backup_performance_mode="maxIO"))
    assert "backup_throughput_mode: 'elastic' cannot be combined with backup_performance_mode 'maxIO'" in problem


def test_provisioned_throughput_needs_its_mibps_and_only_then():
    assert single_problem(context(backup_throughput_mode="provisioned")).startswith(
        "backup_provisioned_throughput_mibps: missing; expected a whole number of MiB/s"
    )
    assert single_problem(context(backup_provisioned_throughput_mibps="64")).startswith(
        "backup_provisioned_throughput_mibps: '64' is set but backup_throughput_mode is 'elastic'"
    )


def test_archive_transition_rules():
    assert "is not later than backup_transition_to_ia_days 30" in single_problem(
        context(backup_transition_to_archive_days="30")
    )
    assert "needs backup_throughput_mode 'elastic'" in single_problem(
        context(backup_transition_to_archive_days="90", backup_throughput_mode="bursting")
    )
    config = load_config(context(backup_transition_to_archive_days="90", backup_transition_to_ia_days="none"))
    assert config.backup_file_system.transition_to_archive_days == 90


def test_kms_key_must_be_in_the_region():
    problem = single_problem(context(backup_kms_key="arn:aws:kms:us-east-1:123456789012:key/"
                                                   "1234abcd-12ab-34cd-56ef-1234567890ab"))
    assert problem.startswith("backup_kms_key: 'arn:aws:kms:us-east-1:") and "expected a key in eu-west-1" in problem


def test_client_group_cannot_be_the_mount_target_group():
    problem = single_problem(context(source_client_security_group="sg-0123456789abcdef0"))
    assert "is the mount-target group itself" in problem


def test_subnet_zone_must_be_a_zone_of_the_region_from_context():
    problem = single_problem(context(subnets="subnet-0123456789abcdef0:eu-west-1z"))
    assert problem == (
        "subnets: subnet 'subnet-0123456789abcdef0' is placed in 'eu-west-1z', which is not a zone of eu-west-1; "
        "expected one of eu-west-1a, eu-west-1b, eu-west-1c"
    )


def test_missing_zone_list_in_context_is_reported():
    ctx = context()
    del ctx[AZ_KEY]
    problem = single_problem(ctx)
    assert problem.startswith(f"{AZ_KEY}: None is not a list of availability zones")


def test_retention_must_keep_hard_links_well_below_the_efs_limit():
    problem = single_problem(context(retain_hourly="100", retain_daily="50", retain_weekly="10", retain_monthly="12"))
    assert "(100+1) + (50+1) + (10+1) + (12+1) = 176 snapshot trees" in problem
    assert f"expected at most {MAX_LINKED_TREES}" in problem and "177 hard links per file" in problem
    # exactly at the limit is fine; unused intervals (0) count nothing
    load_config(context(retain_hourly="0", retain_daily="100", retain_weekly="50", retain_monthly="17"))


def test_at_least_one_interval_must_be_used():
    problem = single_problem(context(retain_daily="0", retain_weekly="0", retain_monthly="0"))
    assert "all are 0; expected at least one interval with retain >= 1" in problem


# ----------------------------------------------------------------------------------------- all problems at once


def test_all_problems_are_reported_in_one_message():
    environment = valid_environment(source_file_system_id="fs-123", vpc_id="vpc-1", typo_key=1)
    problems, message = problems_of(context(environment, retain_daily="seven", backup_automatic_backups="maybe"))
    assert len(problems) == 5
    assert message.splitlines()[0] == "Invalid efs-backup configuration for environment 'test' (5 problems):"
    for needle in ("source_file_system_id: 'fs-123'", "vpc_id: 'vpc-1'", "typo_key: unknown key",
                   "retain_daily: 'seven'", "backup_automatic_backups: 'maybe'"):
        assert any(line.startswith(f"  - {needle}") for line in message.splitlines()), needle


def test_every_problem_line_starts_with_a_key():
    environment = valid_environment(source_file_system_id="x", account="y", region="z", subnets="w")
    problems, _ = problems_of(context(environment))
    for problem in problems:
        assert re.match(r"^[a-z_]+: ", problem), problem


def test_key_catalog_has_documentation_for_every_key():
    for spec in KEYS.values():
        assert spec.type_doc and spec.default_doc and spec.meaning.endswith((".", ")")), spec.name


def test_schedule_keys_are_checked_against_retention_and_syntax():
    problem = single_problem(context(retain_hourly="0", schedule_hourly="rate(1 hour)"))
    assert problem.startswith("schedule_hourly: 'rate(1 hour)' would start hourly runs but retain_hourly is 0")
    problem = single_problem(context(schedule_daily="every day"))
    assert problem.startswith("schedule_daily: 'every day' is not a schedule expression")
    config = load_config(context(retain_weekly="0", schedule_daily="none"))
    assert [p.schedule for p in config.retention] == [None, None, None, "cron(0 6 1 * ? *)"]


def test_worker_keys():
    config = load_config(context(worker_count="4", worker_instance_type="c7gn.xlarge", worker_spot="true",
                                 notification_emails="ops@example.com,backup@example.com"))
    assert (config.workers.count, config.workers.architecture, config.workers.spot) == (4, "arm64", True)
    assert config.notifications.emails == ("ops@example.com", "backup@example.com")
    assert single_problem(context(worker_count="33")).startswith("worker_count: '33' is out of range")



def test_worker_streams_default_to_the_one_constant_and_stay_within_the_limit():
    assert load_config(context()).workers.streams == DEFAULT_WORKER_STREAMS
    config = load_config(context(worker_count="2", worker_streams="16"))
    assert (config.workers.count, config.workers.streams) == (2, MAX_STREAMS_PER_WORKER)
    assert single_problem(context(worker_streams="17")).startswith("worker_streams: '17' is out of range")
    assert single_problem(context(worker_streams="0")).startswith("worker_streams: '0' is out of range")
    assert single_problem(context(worker_streams="2.5")).startswith("worker_streams: '2.5'")


def test_monitoring_keys_default_and_parse():
    assert load_config(context()).monitoring == MonitoringSettings(
        dashboard=False, stale_multiple=2.0, burst_credit_minimum_gib=256, utilization_percent=90)
    config = load_config(context(dashboard="true", alarm_stale_multiple="2.5", alarm_burst_credit_minimum_gib="64",
                                 alarm_utilization_percent="80"))
    assert config.monitoring == MonitoringSettings(True, 2.5, 64, 80)
    assert config.monitoring.stale_after_seconds("daily") == 216000
    assert config.monitoring.stale_after_seconds("monthly") == int(2.5 * 31 * 86400)
    from_json = load_config(context(valid_environment(alarm_stale_multiple=3, dashboard=True))).monitoring
    assert (from_json.stale_multiple, from_json.dashboard) == (3.0, True)
    assert load_config(context_for("production-eu")).monitoring.dashboard is True
    assert load_config(context_for("example")).monitoring.dashboard is False


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("dashboard", "yes", "dashboard: 'yes' is not a boolean; expected true or false"),
        ("alarm_stale_multiple", "1", "alarm_stale_multiple: '1' is out of range; expected a number from 1.5 to 10"),
        ("alarm_stale_multiple", "10.5", "alarm_stale_multiple: '10.5' is out of range"),
        ("alarm_stale_multiple", "two", "alarm_stale_multiple: 'two' is not a number; expected a number from 1.5 "
         "to 10"),
        ("alarm_stale_multiple", " 2", "alarm_stale_multiple: ' 2' is not a number"),
        ("alarm_stale_multiple", "nan", "alarm_stale_multiple: 'nan' is not a number"),
        ("alarm_stale_multiple", True, "alarm_stale_multiple: True is a boolean; expected a number from 1.5 to 10"),
        ("alarm_burst_credit_minimum_gib", "0", "alarm_burst_credit_minimum_gib: '0' is out of range; expected a "
         "whole number from 1 to 1048576"),
        ("alarm_burst_credit_minimum_gib", "1.5", "alarm_burst_credit_minimum_gib: '1.5' is not a whole number"),
        ("alarm_utilization_percent", "100", "alarm_utilization_percent: '100' is out of range; expected a whole "
         "number from 50 to 99"),
        ("alarm_utilization_percent", 49, "alarm_utilization_percent: 49 is out of range"),
    ],
)
def test_bad_monitoring_values_name_key_value_and_expectation(key, value, expected):
    problem = single_problem(context(**{key: value}))
    assert problem.startswith(expected), problem


def test_restore_target_file_systems_from_cdk_json_and_the_command_line():
    assert load_config(context()).restore_targets == ()
    from_json = load_config(context(valid_environment(
        restore_target_file_systems={"fs-0123456789abcdef9": "sg-0123456789abcdef9"})))
    from_cli = load_config(context(restore_target_file_systems="fs-0123456789abcdef9:sg-0123456789abcdef9, "
                                                              "fs-89abcdef:sg-89abcdef"))
    assert [(t.file_system_id, t.mount_target_security_group_id) for t in from_json.restore_targets] == [
        ("fs-0123456789abcdef9", "sg-0123456789abcdef9")]
    assert [t.file_system_id for t in from_cli.restore_targets] == ["fs-0123456789abcdef9", "fs-89abcdef"]
    problems, _ = problems_of(context(restore_target_file_systems="fs-xyz:sg-0123456789abcdef9,fs-89abcdef"))
    assert any(p.startswith("restore_target_file_systems:") and "is not a file-system mapping" in p for p in problems)
    problems, _ = problems_of(context(restore_target_file_systems="fs-xyz:sg-nope"))
    assert any("'fs-xyz' is not an EFS id" in p and "security group 'sg-nope'" in p for p in problems)
    problems, _ = problems_of(context(restore_target_file_systems="fs-0123456789abcdef0:sg-0123456789abcdef9"))
    assert any("names the production file system" in p for p in problems)
    problems, _ = problems_of(context(restore_target_file_systems="fs-89abcdef:sg-89abcdef,fs-89abcdef:sg-01234567"))
    assert any("'fs-89abcdef' is listed more than once" in p for p in problems)


def test_fallback_instance_types_are_checked():
    config = load_config(context(worker_fallback_instance_types="m6a.large, m5.large"))
    assert config.workers.instance_types == ("m6i.large", "m6a.large", "m5.large")
    assert load_config(context()).workers.instance_types == ("m6i.large",)
    assert load_config(context(valid_environment(worker_fallback_instance_types=["m6a.large"]))
                       ).workers.fallback_instance_types == ("m6a.large",)
    assert single_problem(context(worker_fallback_instance_types="m6a.large,m6a.large")).startswith(
        "worker_fallback_instance_types: 'm6a.large,m6a.large' lists an instance type twice")
    assert single_problem(context(worker_fallback_instance_types="m6a")).startswith(
        "worker_fallback_instance_types: 'm6a' is not an instance type")
    assert "lists worker_instance_type 'm6i.large'" in single_problem(
        context(worker_fallback_instance_types="m6i.large"))
    problem = single_problem(context(worker_fallback_instance_types="m7g.large"))
    assert "'m7g.large' not x86_64 like worker_instance_type 'm6i.large'" in problem
    problem = single_problem(context(worker_fallback_instance_types="m6a.large,m5.large,m5a.large,c6i.large,c6a.large"))
    assert "5 types; expected at most 4" in problem


def test_worker_ebs_kms_key_is_default_or_a_key_of_the_region():
    assert load_config(context()).workers.ebs_kms_key_arn is None
    key = "arn:aws:kms:eu-west-1:210987654321:key/0123abcd-0123-4567-89ab-0123456789ab"
    assert load_config(context(worker_ebs_kms_key=key)).workers.ebs_kms_key_arn == key, "any account, same region"
    assert single_problem(context(worker_ebs_kms_key="alias/aws/ebs")).startswith(
        "worker_ebs_kms_key: 'alias/aws/ebs' is not a key choice")
    other_region = key.replace("eu-west-1", "us-east-1")
    assert "is in us-east-1; expected a key in eu-west-1" in single_problem(context(worker_ebs_kms_key=other_region))


def test_every_backup_id_the_stack_accepts_the_engine_accepts_within_its_tighter_limit(tmp_path):
    """The stack's backup-id (settings.identifiers.BACKUP_ID, up to 64) is the engine's (up to 128) with a tighter
    limit, so the notification subjects that carry it stay within SNS's Subject limit (less than 100 characters)."""
    import json

    from cdk_helpers import synthesize
    from efs_backup_engine.layout import BACKUP_ID_RE
    from settings.identifiers import BACKUP_ID, BACKUP_ID_MAX_LENGTH

    for code in range(32, 127):
        for candidate in (chr(code), "a" + chr(code)):
            if BACKUP_ID.match(candidate):
                assert BACKUP_ID_RE.match(candidate), candidate
            else:
                assert not BACKUP_ID_RE.match(candidate) or len(candidate) > BACKUP_ID_MAX_LENGTH, candidate
    longest = "a" * BACKUP_ID_MAX_LENGTH
    assert BACKUP_ID.match(longest) and BACKUP_ID_RE.match(longest)
    assert not BACKUP_ID.match(longest + "a") and BACKUP_ID_RE.match(longest + "a" * 64), "the engine's 128"
    assert load_config(context(backup_id=longest)).backup_id == longest

    template = json.dumps(synthesize("example", tmp_path, backup_id=longest).template_json)
    subjects = re.findall(r'\\"Subject\\":\\"(efs-backup [^\\]*)\\"', template)
    assert subjects and all(longest in subject and len(subject) < 100 for subject in subjects), subjects


@pytest.mark.parametrize("key, value", [
    ("backup_id", "home\n"), ("source_file_system_id", "fs-12345678\n"), ("vpc_id", "vpc-0123abcd\n"),
    ("account", "111111111111\n"), ("region", "eu-west-1\n"), ("stack_name", "EfsBackup-test\n"),
    ("schedule_daily", "rate(1 day)\n"), ("retain_daily", "3\n"), ("alarm_stale_multiple", "2\n"),
])
def test_a_value_is_valid_only_as_a_whole_not_up_to_a_trailing_newline(key, value):
    """A pattern ending in `$` also matches before a final newline: every identifier, number and schedule is
    matched whole (re.fullmatch), so `home\\n` never becomes a backup-id (a directory name on the backup file
    system) or a tag value."""
    environment = valid_environment(**{key: value})
    problems, _ = problems_of(context(environment))
    assert any(problem.startswith(key + ":") for problem in problems), problems
