"""The sizing planner: figures computed from the documented constants (never pasted), monotonicity, edge cases,
the old Data Pipeline table through the model, and the `plan` subcommand's output and exit codes."""

from __future__ import annotations

import json

import pytest

from efs_backup_cli import planner as p
from efs_backup_cli.main import main


# A window the fastest fleet fits for load() (2 TiB, 30 M files, 2%, elastic), but leaves less than the safety margin
# of: 32 workers x 16 streams take about 7 min 10 s, mostly starting instances.
TIGHT = 8 * 60


def load(size="2TiB", files="30M", change=0.02, mode="elastic", mibps=None):
    return p.workload(size=p.parse_size(size), files=p.parse_count(files), average_file_size=None,
                      daily_change=change, throughput_mode=mode, provisioned_mibps=mibps)


def test_parsers():
    assert p.parse_size("2TiB") == 2 * p.TIB and p.parse_size("500GB") == 500 * p.GB
    assert p.parse_size("30MiB") == 30 * p.MIB and p.parse_size("1024") == 1024
    assert p.parse_count("30M") == 30_000_000 and p.parse_count("250k") == 250_000
    assert p.parse_fraction("2%") == pytest.approx(0.02) and p.parse_fraction("0.5") == 0.5
    assert p.parse_duration("4h") == 4 * 3600 and p.parse_duration("90m") == 5400
    for bad, parse in (("two", p.parse_size), ("x", p.parse_count), ("150%", p.parse_fraction),
                       ("4 weeks", p.parse_duration), ("14400", p.parse_duration)):
        with pytest.raises(p.PlanError):
            parse(bad)


def test_incremental_metadata_term_from_the_constants():
    work = load(change=0.01)
    run = p.estimate_run(work, "incremental", 4, "m6i.large")
    changed = work.files * 0.01
    reads = work.files * p.SCAN_READ_OPS_PER_FILE + changed
    expected = p.BALANCE_FACTOR / 4 * (reads * p.EFS_READ_LATENCY_S + changed * p.WRITES_PER_CHANGED_FILE
                                       * p.EFS_WRITE_LATENCY_S)
    assert run.terms["metadata"] == pytest.approx(expected, abs=0.1)
    assert run.bottleneck == "metadata"
    data = p.BALANCE_FACTOR / 4 * work.size_bytes * 0.01 / (p.INSTANCE_BASELINE_GBPS["m6i.large"] * 1e9 / 8)
    assert run.seconds == pytest.approx(expected + data + p.RUN_FIXED_SECONDS, rel=1e-3)


def test_streams_divide_a_workers_metadata_time_but_not_its_data_time():
    work = load(change=0.01)
    one = p.estimate_run(work, "incremental", 4, "m6i.large")
    eight = p.estimate_run(work, "incremental", 4, "m6i.large", streams=8)
    assert eight.streams == 8 and eight.workers == 4
    assert eight.terms["metadata"] == pytest.approx(one.terms["metadata"] / 8, abs=0.1)
    assert eight.terms["instance network"] == one.terms["instance network"], "one network interface per worker"
    times = [p.estimate_run(work, "incremental", 4, "m6i.large", streams=s).seconds
             for s in range(1, p.MAX_STREAMS_PER_WORKER + 1)]
    assert times == sorted(times, reverse=True), "more streams never make it slower"
    with pytest.raises(p.PlanError, match="streams must be 1 to 16"):
        p.estimate_run(work, "incremental", 4, "m6i.large", streams=p.MAX_STREAMS_PER_WORKER + 1)
    most = p.estimate_run(load(files="3G", size="20TiB"), "incremental", p.MAX_WORKERS, "m6i.large",
                          streams=p.MAX_STREAMS_PER_WORKER)
    fewer = p.estimate_run(load(files="3G", size="20TiB"), "incremental", p.MAX_WORKERS, "m6i.large", streams=2)
    assert (most.bottleneck, fewer.bottleneck) == ("metadata", "metadata")
    assert p.what_helps(most) == "already 32 workers x 16 streams, the most a run takes"
    assert p.what_helps(fewer).endswith("more streams per worker shorten it")


def test_full_run_of_large_files_is_bound_by_the_network_or_efs():
    work = p.workload(size=p.parse_size("1TiB"), files=None, average_file_size=p.parse_size("1GiB"),
                      daily_change=0.01, throughput_mode="elastic")
    one = p.estimate_run(work, "full", 1, "m6i.large")
    assert one.bottleneck == "instance network"
    rate = p.INSTANCE_BASELINE_GBPS["m6i.large"] * 1e9 / 8
    assert one.terms["instance network"] == pytest.approx(p.BALANCE_FACTOR * work.size_bytes / rate, abs=0.1)
    assert one.seconds == pytest.approx(one.terms["metadata"] + one.terms["instance network"] + p.RUN_FIXED_SECONDS,
                                        abs=0.2)
    many = p.estimate_run(work, "full", 32, "m6i.16xlarge")
    assert many.bottleneck == "EFS write throughput", "32 big workers outrun elastic's per-file-system write limit"
    assert many.seconds == pytest.approx(work.size_bytes / p.EFS_LIMITS["elastic"][3] + p.RUN_FIXED_SECONDS,
                                         rel=1e-3)


def test_bursting_credits_and_read_metering():
    size = 512 * p.GIB
    baseline, burst = p.burst_rates(size)
    assert baseline == pytest.approx(size / p.GIB * p.BURST_BASELINE_PER_GIB)
    assert burst == p.BURST_MIN_RATE
    assert p.daily_burst_hours(size) == pytest.approx(24 * baseline / burst)
    assert p.burst_rates(4 * p.TIB)[1] == pytest.approx(4 * p.BURST_RATE_PER_TIB)
    credits = baseline * p.SECONDS_PER_DAY
    within = burst * credits / (burst - baseline)
    assert p.metered_seconds(within, size, credits) == pytest.approx(within / burst)
    beyond = within + baseline * 600
    assert p.metered_seconds(beyond, size, credits) == pytest.approx(credits / (burst - baseline) + 600)
    # A full run of 10 TiB on bursting outlasts the 2.1 TiB of initial credits; reads cost a third of writes.
    work = p.workload(size=10 * p.TIB, files=None, average_file_size=p.parse_size("100MiB"), daily_change=0.01,
                      throughput_mode="bursting")
    full = p.estimate_run(work, "full", 32, "m6i.16xlarge")
    assert full.bottleneck == "EFS burst credits"
    assert full.terms["EFS read throughput"] < full.terms["EFS burst credits"]
    baseline, burst = p.burst_rates(10 * p.TIB)
    at_burst = p.BURST_INITIAL_CREDITS / (burst - baseline)
    assert full.seconds == pytest.approx(at_burst + (10 * p.TIB - burst * at_burst) / baseline
                                         + p.RUN_FIXED_SECONDS, rel=1e-3)


def test_provisioned_uses_the_provisioned_rate():
    slow = p.estimate_run(load(size="1TiB", files="10k", mode="provisioned", mibps=10), "full", 32, "m6i.16xlarge")
    fast = p.estimate_run(load(size="1TiB", files="10k", mode="provisioned", mibps=1000), "full", 32, "m6i.16xlarge")
    assert slow.bottleneck == "EFS write throughput"
    # max(provisioned, the bursting baseline the size gives)
    assert slow.terms["EFS write throughput"] == pytest.approx(p.TIB / p.burst_rates(p.TIB)[0], rel=1e-3)
    assert fast.seconds < slow.seconds


@pytest.mark.parametrize("mode", ["elastic", "bursting"])
def test_monotonic(mode):
    base = p.estimate_run(load(mode=mode), "incremental", 4, "m6i.large").seconds
    assert p.estimate_run(load(mode=mode, files="60M"), "incremental", 4, "m6i.large").seconds > base
    assert p.estimate_run(load(mode=mode, change=0.04), "incremental", 4, "m6i.large").seconds > base
    assert p.estimate_run(load(mode=mode), "incremental", 8, "m6i.large").seconds < base
    assert p.estimate_run(load(mode=mode), "incremental", 4, "m6i.xlarge").seconds <= base
    times = [p.estimate_run(load(mode=mode), "incremental", w, "m6i.large").seconds for w in range(1, 33)]
    assert times == sorted(times, reverse=True), "more workers never make it slower"
    full = p.estimate_run(load(mode=mode), "full", 4, "m6i.large").seconds
    assert full > base, "a first full run costs more than an incremental one"


def test_plan_recommends_the_cheapest_fleet_that_fits():
    work = load()
    result = p.plan(work, 4 * 3600, margin=0)
    chosen = result.incremental
    assert result.fits and chosen.seconds <= 4 * 3600
    price = chosen.workers * p.INSTANCE_PRICE_UNITS[chosen.instance_type]
    for workers, streams, instance_type in p.fleets():
        if workers * p.INSTANCE_PRICE_UNITS[instance_type] < price:
            assert p.estimate_run(work, "incremental", workers, instance_type, streams=streams).seconds > 4 * 3600
    # At that price, fewer streams (or fewer workers, same streams) do not fit either: streams are added only as
    # far as they are needed.
    if chosen.streams > 1:
        assert p.estimate_run(work, "incremental", chosen.workers, chosen.instance_type,
                              streams=chosen.streams - 1).seconds > 4 * 3600
    assert result.recommendation == {
        "workers": chosen.workers, "streams": chosen.streams, "instance_type": chosen.instance_type,
        "cdk_context": "-c worker_count=%d -c worker_streams=%d -c worker_instance_type=%s"
                       % (chosen.workers, chosen.streams, chosen.instance_type)}
    wider = p.plan(work, 8 * 3600, margin=0).incremental
    assert wider.workers * p.INSTANCE_PRICE_UNITS[wider.instance_type] <= price, "a longer window never costs more"


def test_plan_that_cannot_fit_says_so():
    result = p.plan(load(files="3G", size="20TiB"), 15 * 60)
    assert not result.fits
    assert any("no fleet" in note for note in result.notes)


def test_workload_edge_cases():
    with pytest.raises(p.PlanError, match="two of"):
        p.workload(size=p.TIB, files=None, average_file_size=None, daily_change=0.01, throughput_mode="elastic")
    with pytest.raises(p.PlanError, match="not --average-file-size"):
        p.workload(size=p.TIB, files=1000, average_file_size=p.MIB, daily_change=0.01, throughput_mode="elastic")
    with pytest.raises(p.PlanError, match="provisioned-mibps"):
        p.workload(size=p.TIB, files=1000, average_file_size=None, daily_change=0.01, throughput_mode="provisioned")
    with pytest.raises(p.PlanError, match="only to"):
        p.workload(size=p.TIB, files=1000, average_file_size=None, daily_change=0.01, throughput_mode="elastic",
                   provisioned_mibps=100)
    zero = p.estimate_run(load(change=0.0), "incremental", 1, "m6i.large")
    assert zero.files_copied == 0 and zero.bytes_copied == 0 and zero.bottleneck == "metadata"
    assert p.workload(size=None, files=10, average_file_size=100, daily_change=0, throughput_mode="elastic"
                      ).size_bytes == 1000
    with pytest.raises(p.PlanError, match="more than 0"):  # all three given, one of them 0: no division by it
        p.workload(size=p.TIB, files=0, average_file_size=1024, daily_change=0.01, throughput_mode="elastic")


def test_old_table_through_the_model():
    rows = p.old_table_rows()
    assert [r["size"] for r in rows] == [row[0] for row in p.OLD_TABLE]
    for row in rows:
        size = p.parse_size(row["size"].replace("GB", "GiB").replace("TB", "TiB"))
        change = p.parse_size(row["daily_change"].replace("GB", "GiB"))
        baseline, burst = p.burst_rates(size)
        assert row["model_daily_burst_hours"] == pytest.approx(24 * baseline / burst, abs=0.01)
        assert row["model_remaining_burst_hours"] == pytest.approx(24 * baseline / burst - change / burst / 3600,
                                                                   abs=0.01)
        assert row["fits"], row
    # From 1 TB on the old "11.75 remaining burst hours" is the 12 burst hours a day minus the 15-minute window:
    big = [r for r in rows if r["old_remaining_burst_hours"] == 11.75]
    assert all(abs(r["model_remaining_burst_hours"] - 11.75) < 0.05 for r in big)
    # Below 1 TiB the old table's burst hours exceed what the documented credit model gives.
    small = [r for r in rows if r["old_remaining_burst_hours"] < 11.75]
    assert all(r["model_remaining_burst_hours"] < r["old_remaining_burst_hours"] for r in small)


def test_plan_command(capsys):
    code = main(["plan", "--size", "2TiB", "--files", "30M", "--daily-change", "2%", "--throughput-mode", "elastic",
                 "--window", "8h", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["fits"] and out["recommendation"]["workers"] >= 1 and out["warnings"] == []
    assert out["incremental"]["bottleneck"] in p.BOTTLENECKS
    assert out["constants"]["writes_per_changed_file"] == p.WRITES_PER_CHANGED_FILE
    code = main(["plan", "--size", "20TiB", "--files", "3G", "--daily-change", "2%", "--throughput-mode",
                 "bursting", "--window", "15m"])
    captured = capsys.readouterr()
    assert code == 2 and "does NOT fit" in captured.out
    code = main(["plan", "--size", "2TiB", "--daily-change", "2%", "--throughput-mode", "elastic", "--window", "4h"])
    assert code == 3 and "two of" in capsys.readouterr().err
    code = main(["plan", "--size", "2TiB", "--files", "1M", "--daily-change", "2%", "--throughput-mode", "elastic",
                 "--window", "4h", "--old-table"])
    assert code == 0 and "m3.xlarge" in capsys.readouterr().out
    assert main(["plan", "--size", "1TiB"]) == 64


def test_units_people_type():
    assert p.parse_count("10,000,000") == p.parse_count("10M") == p.parse_count("10_000_000") == 10_000_000
    assert p.parse_count("1.5k") == 1500 and p.parse_count("2B") == p.parse_count("2G") == 2_000_000_000
    assert p.parse_size("5TB") == 5 * 1000 ** 4 and p.parse_size("1,024GiB") == p.TIB
    assert p.parse_fraction("1%") == pytest.approx(0.01) and p.parse_fraction("0.01") == 0.01
    assert p.parse_fraction("100%") == 1.0
    assert p.parse_duration("4h") == 4 * 3600 and p.parse_duration("90m") == 5400
    assert p.parse_duration("1h30m") == 5400 and p.parse_duration("2.5 hours") == 9000
    assert p.parse_duration("3600s") == 3600 and p.parse_duration("600", bare_unit="s") == 600
    for bad in ("4", "90", "4 weeks", "h", ""):
        with pytest.raises(p.PlanError, match="not a duration"):
            p.parse_duration(bad)
    with pytest.raises(p.PlanError, match="bare number has no unit"):
        p.parse_duration("4")
    for ambiguous in ("1", "2", "50"):
        with pytest.raises(p.PlanError, match="ambiguous"):
            p.parse_fraction(ambiguous)
    with pytest.raises(p.PlanError, match="not a count"):
        p.parse_count("10,00,000")


def test_plan_command_refuses_ambiguous_units_and_prints_units(capsys):
    base = ["plan", "--size", "5TB", "--files", "10,000,000", "--throughput-mode", "elastic"]
    assert main(base + ["--daily-change", "1", "--window", "4h"]) == 3
    assert "--daily-change '1' is ambiguous: write 1% if you mean 1 percent" in capsys.readouterr().err
    assert main(base + ["--daily-change", "1%", "--window", "4", "--json"]) == 3
    error = json.loads(capsys.readouterr().out)
    assert error == {"error": "'4' is not a duration (a bare number has no unit); expected e.g. 4h, 90m, 1h30m, "
                              "3600s", "exit_code": 3}
    code = main(base + ["--daily-change", "0.01", "--window", "90m"])
    text = capsys.readouterr().out
    assert text.startswith("workload: 4.5 TiB (5.0 TB) in 10,000,000 files (average 488.3 KiB), 1% changed per "
                           "run, elastic throughput, window 1h30m\n"), text
    full = text.splitlines()[text.splitlines().index(next(l for l in text.splitlines() if l.startswith("  full"))) + 1]
    assert full.strip() == "scanned 10,000,000 files, copied 10,000,000 files / 4.5 TiB", "a first run scans too"


def test_the_recommendation_leaves_the_safety_margin_else_warns():
    work = load()  # 2 TiB, 30 M files, 2%, elastic
    window = 4 * 3600
    roomy = p.plan(work, window)
    chosen = roomy.incremental
    assert roomy.fits and roomy.warnings == [] and roomy.margin == p.SAFETY_MARGIN
    assert chosen.seconds <= (1 - p.SAFETY_MARGIN) * window and roomy.headroom_seconds == window - chosen.seconds
    price = chosen.workers * p.INSTANCE_PRICE_UNITS[chosen.instance_type]
    for workers, streams, instance_type in p.fleets():
        if workers * p.INSTANCE_PRICE_UNITS[instance_type] < price:
            assert p.estimate_run(work, "incremental", workers, instance_type,
                                  streams=streams).seconds > (1 - p.SAFETY_MARGIN) * window
    assert p.plan(work, window, margin=0).incremental.seconds > chosen.seconds, "without a margin: cheaper, tighter"
    # Eight minutes: the fastest fleet fits, but no fleet leaves 20% of it free.
    tight = p.plan(work, TIGHT)
    fastest = p.cheapest_fitting(work, "incremental", 0)[1]
    assert tight.fits and tight.incremental == fastest
    headroom = TIGHT - fastest.seconds
    assert 0 < headroom < p.SAFETY_MARGIN * TIGHT
    (warning,) = tight.warnings
    assert warning.startswith("the incremental run leaves %s of the 8m00s window (%.0f%%), less than the 20%% "
                              "safety margin, even with the fastest fleet" % (p.format_duration(headroom),
                                                                               100 * headroom / TIGHT))
    assert p.plan(work, TIGHT, margin=0.05).warnings == [], "a smaller margin is met"
    argv = ["plan", "--size", "2TiB", "--files", "30M", "--daily-change", "2%", "--throughput-mode", "elastic"]
    assert main(argv + ["--window", "8m"]) == 2, "a warning is exit 2"
    assert main(argv + ["--window", "8m", "--margin", "5%"]) == 0
    assert main(argv + ["--window", "8m", "--margin", "100%"]) == 3


def test_plan_command_prints_the_warning_and_the_headroom(capsys):
    main(["plan", "--size", "2TiB", "--files", "30M", "--daily-change", "2%", "--throughput-mode", "elastic",
          "--window", "8m"])
    text = capsys.readouterr().out
    headroom = TIGHT - p.cheapest_fitting(load(), "incremental", 0)[1].seconds
    left = "%s of the 8m00s window (%.0f%%)" % (p.format_duration(headroom), 100 * headroom / TIGHT)
    assert "-- fits, but without the safety margin" in text
    assert "\n  warning: the incremental run leaves " + left in text
    assert "\n  headroom: the incremental run leaves %s of the window free (%.0f%%; safety margin 20%%)" % (
        p.format_duration(headroom), 100 * headroom / TIGHT) in text


def test_the_limiting_resource_is_labelled_by_its_kind():
    many_small = p.estimate_run(load(), "incremental", 4, "m6i.large")
    assert (many_small.bottleneck, many_small.limited_by) == ("metadata", "metadata")
    big_files = p.workload(size=p.TIB, files=None, average_file_size=p.GIB, daily_change=0.5,
                           throughput_mode="elastic")
    network = p.estimate_run(big_files, "incremental", 1, "m6i.large")
    assert (network.bottleneck, network.limited_by) == ("instance network", "throughput")
    assert network.terms["instance network"] > network.terms["metadata"]
    tiny = p.workload(size=p.TIB, files=None, average_file_size=p.GIB, daily_change=0.001,
                      throughput_mode="elastic")
    start = p.estimate_run(tiny, "incremental", 1, "m6i.large")
    assert start.bottleneck == "start-up" and start.limited_by == "start-up"
    assert start.terms["start-up"] == p.RUN_FIXED_SECONDS > start.terms["worker (metadata + data)"]
    assert set(p.BOTTLENECK_KINDS.values()) == {"metadata", "throughput", "start-up"}
    assert set(p.WHAT_HELPS) == set(p.BOTTLENECKS)
