"""Sizing planner: how long a first full run and an incremental run take, and which fleet fits the window.

The model is deliberately small and every figure in it is a named constant with its source, so a reader can check
it and an operator can see which limit binds.

A run of the engine does, per worker and one part after another (the engine syncs one part at a time per worker):

* **scan**: every file of the tree is compared with the newest snapshot: ``SCAN_READ_OPS_PER_FILE`` metadata reads
  (a GETATTR/LOOKUP on the source and one on the backup tree), each one NFS round trip at ``EFS_READ_LATENCY_S``;
* **namespace writes**: every file the run copies costs ``WRITES_PER_CHANGED_FILE`` (incremental; measured) or
  ``WRITES_PER_NEW_FILE`` (first full run) metadata writes at ``EFS_WRITE_LATENCY_S``;
* **data**: the bytes of the copied files (rsync rewrites a changed file whole on local paths), through the
  instance: the lower of its baseline network bandwidth and EFS's per-client limit.

A stream does these one after another; each worker instance runs ``streams`` of them (worker_streams), so a run has
workers x streams streams, on even shares (the engine balances parts to within 1.15, see bench/README.md). The
streams of one instance overlap their metadata round trips (each waits on the network, not on the CPU: EFS's own
advice is to parallelize, https://docs.aws.amazon.com/efs/latest/ug/performance-tips.html), so an instance's
metadata time is its share divided among its streams; its data share goes through its one network interface
whatever the number of streams. An instance's time is the sum of the two (an upper bound: one stream's data may
overlap another's round trips). The file systems bound the whole fleet: bytes per
second (per-file-system read and write limits; in bursting mode the credit model; in provisioned mode the provisioned
rate, reads metered at one third) and operations per second (the per-file-system IOPS limits). The run takes the
longest of (worker time, file-system data time, file-system IOPS time) plus the fixed cost of starting instances;
the longest term names the bottleneck.

Assumptions (stated in every plan): both file systems use the given throughput mode and General Purpose
performance mode; the production file system has no other load during the window; the backup file system's size
is the production size (its Standard-class data, which sets the bursting baseline); one run per day (the daily
change is the change per run).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from efs_backup_contract.limits import MAX_STREAMS_PER_WORKER, MAX_WORKERS  # what the state machines accept

KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3
TIB = 1024 ** 4
GB = 1000 ** 3

# ----------------------------------------------------------------------------------------------- the constants

# EFS per-operation latency, Regional file systems, General Purpose mode. Source: Amazon EFS User Guide,
# "Performance specifications" table (docs.aws.amazon.com/efs/latest/ug/performance.html): reads "~1 ms" in the
# earlier edition ("as low as 250 µs" today, a best case), writes "as low as 2.7 ms". Metadata operations (lookup,
# getattr, create, link, unlink, rename, setattr) are one NFS round trip each, so these are per-operation costs.
EFS_READ_LATENCY_S = 0.001
EFS_WRITE_LATENCY_S = 0.0027

# Per-file-system limits (same table). Throughput: the low end of each range (the high end needs a large region).
EFS_LIMITS = {
    # mode: (max read IOPS, max write IOPS, per-FS read bytes/s, per-FS write bytes/s, per-client bytes/s)
    "elastic": (900_000, 500_000, 20 * GIB, 1 * GIB, 1500 * MIB),
    "provisioned": (55_000, 25_000, 3 * GIB, 1 * GIB, 500 * MIB),
    "bursting": (35_000, 7_000, 3 * GIB, 1 * GIB, 500 * MIB),
}

# Bursting mode (EFS User Guide, "Throughput modes" / "Bursting throughput"; AWS re:Post "choosing the correct
# throughput mode"): baseline 50 KiB/s per GiB of Standard storage (50 MiB/s per TiB, at least 1 MiB/s), burst to
# 100 MiB/s, or 100 MiB/s per TiB above 1 TiB, while credits last. A new file system starts with 2.1 TiB of credits.
# Reads are metered at one third of their bytes in bursting and provisioned mode ("Understanding metered throughput").
BURST_BASELINE_PER_GIB = 50 * KIB
BURST_MIN_BASELINE = 1 * MIB
BURST_RATE_PER_TIB = 100 * MIB
BURST_MIN_RATE = 100 * MIB
BURST_INITIAL_CREDITS = 2.1 * TIB
READ_METERING_FACTOR = 1 / 3
SECONDS_PER_DAY = 86_400

# EC2 baseline network bandwidth (EC2 User Guide, "General purpose instances - network performance"; the "up to"
# burst figures last minutes only, so a multi-hour run gets the baseline). Gbit/s -> bytes/s.
INSTANCE_BASELINE_GBPS: Dict[str, float] = {
    "m6i.large": 0.781,
    "m6i.xlarge": 1.562,
    "m6i.2xlarge": 3.125,
    "m6i.4xlarge": 6.25,
    "m6i.8xlarge": 12.5,
    "m6i.16xlarge": 25.0,
}
# Relative price of each type (On-Demand price within a family scales with size: large = 1).
INSTANCE_PRICE_UNITS: Dict[str, int] = {
    "m6i.large": 1, "m6i.xlarge": 2, "m6i.2xlarge": 4, "m6i.4xlarge": 8, "m6i.8xlarge": 16, "m6i.16xlarge": 32,
}

# This engine. bench/README.md (100,000 files, retain 3, 1% change): 13.3 namespace writes per changed file in an
# incremental run (recycling the spare: unlink + relink of the files changed in the last retain+1 runs, then
# rsync's own writes). A file copied into a new tree costs rsync's writes: temp create, rename, 2 chmods, utimes
# (bench/README.md, "Reading the table": the floor's ~5.5 per changed file includes deletes and renames).
WRITES_PER_CHANGED_FILE = 13.3
WRITES_PER_NEW_FILE = 5.0
# The scan of an unchanged file: one attribute lookup on each side (rsync's sender on the source, its generator on
# the backup tree). An upper bound: READDIRPLUS may return attributes with the listing.
SCAN_READ_OPS_PER_FILE = 2
# Largest share / ideal share of the engine's parts (bench/README.md: 1.13 incremental, 1.07-1.19 full).
BALANCE_FACTOR = 1.15
# Fixed cost of a run: the workers' boot (AL2023 to user data, package install, mounts) and the finalize instance
# launched after them. An estimate, not measured here: two instance starts of ~2 minutes.
RUN_FIXED_SECONDS = 2 * 120

# The share of the window a plan keeps free by default: a day with more changes than usual, slower EFS latency or a
# slow instance start must not push the run out of its window. Less left is a warning (and exit 2).
SAFETY_MARGIN = 0.20

# What limits a run, and what kind of limit it is: metadata (round trips per file: more workers help, up to the
# file system's IOPS), throughput (bytes: bigger instances or a faster throughput mode help) or start-up (the
# fixed cost of starting the instances: nothing in the fleet helps).
BOTTLENECK_KINDS = {
    "metadata": "metadata", "EFS IOPS": "metadata",
    "instance network": "throughput", "EFS client limit": "throughput", "EFS read throughput": "throughput",
    "EFS write throughput": "throughput", "EFS burst credits": "throughput",
    "start-up": "start-up",
}
BOTTLENECKS = tuple(BOTTLENECK_KINDS)
WHAT_HELPS = {
    "metadata": "more workers or more streams per worker shorten it",
    "EFS IOPS": "a file-system limit: more workers do not help",
    "instance network": "bigger instances shorten it",
    "EFS client limit": "EFS's per-client limit: more workers shorten it, bigger instances do not",
    "EFS read throughput": "a file-system limit: more workers do not help",
    "EFS write throughput": "a file-system limit: more workers do not help",
    "EFS burst credits": "bursting credits run out: elastic or provisioned throughput help",
    "start-up": "starting the instances dominates",
}


class PlanError(ValueError):
    """An impossible or inconsistent sizing request."""


# ----------------------------------------------------------------------------------------------- parsing helpers

_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGTP]?)(i?)B?\s*$", re.IGNORECASE)
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([KMGB]?)\s*$", re.IGNORECASE)
_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d)",
                            re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _digits(text: str) -> str:
    """'10,000,000' / '10_000_000' / '1 024' -> '10000000': thousands separators people type."""
    raw = str(text).strip()
    if re.match(r"^[0-9]{1,3}([,_ ][0-9]{3})+(\.[0-9]+)?\s*[A-Za-z]*$", raw):
        raw = re.sub(r"(?<=[0-9])[,_ ](?=[0-9]{3})", "", raw)
    return raw


def parse_size(text: str) -> int:
    """'2TiB', '5TB', '500GB', '30MiB', '1,024GiB', '1024' (bytes) -> bytes. Binary with 'i', decimal without."""
    match = _SIZE.match(_digits(text))
    if not match:
        raise PlanError(f"{text!r} is not a size; expected e.g. 2TiB, 5TB, 500GB, 30MiB")
    number, prefix, binary = float(match.group(1)), match.group(2).upper(), bool(match.group(3))
    power = "KMGTP".index(prefix) + 1 if prefix else 0
    return int(round(number * ((1024 if binary else 1000) ** power)))


def parse_count(text: str) -> int:
    """'30M', '10,000,000', '250k', '1.5G' (or '1.5B', billion), '1200' -> a count (decimal prefixes)."""
    match = _COUNT.match(_digits(text))
    if not match:
        raise PlanError(f"{text!r} is not a count; expected e.g. 30M, 10,000,000, 250k")
    prefix = match.group(2).upper().replace("B", "G")
    power = "KMG".index(prefix) + 1 if prefix else 0
    return int(round(float(match.group(1)) * 1000 ** power))


def parse_fraction(text: str, what: str = "--daily-change") -> float:
    """'2%' or '0.02' -> 0.02. A bare number of 1 or more is refused: '1' could mean 1% or 100%."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise PlanError(f"{what} {text!r} is not a share; expected e.g. 2% or 0.02") from None
    if not raw.endswith("%") and value >= 1:
        raise PlanError(f"{what} {text!r} is ambiguous: write {raw}% if you mean {raw} percent (a bare number is a "
                        "fraction below 1: 0.02 is 2%, and 100% means everything)")
    if not 0 <= value <= 1:
        raise PlanError(f"{what} {text!r} is out of range; expected 0% to 100%")
    return value


def parse_duration(text: str, bare_unit: Optional[str] = None) -> float:
    """'4h', '90m', '1h30m', '2.5 hours', '3600s' -> seconds. A bare number is refused ('4' could be hours or
    seconds) unless ``bare_unit`` says what it means (e.g. 's' for --timeout)."""
    raw = str(text).strip()
    if bare_unit and re.match(r"^[0-9]*\.?[0-9]+$", raw):
        return float(raw) * _DURATION_UNITS[bare_unit]
    parts = _DURATION_PART.findall(raw)
    if not raw or not parts or _DURATION_PART.sub("", raw).strip():
        hint = " (a bare number has no unit)" if re.match(r"^[0-9]*\.?[0-9]+$", raw) else ""
        raise PlanError(f"{text!r} is not a duration{hint}; expected e.g. 4h, 90m, 1h30m, 3600s")
    return sum(float(number) * _DURATION_UNITS[unit[0].lower()] for number, unit in parts)


# ----------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Workload:
    size_bytes: int
    files: int
    daily_change: float  # fraction of files (and of bytes) changed per run
    throughput_mode: str
    provisioned_bytes_per_s: Optional[float] = None

    @property
    def average_file_size(self) -> float:
        return self.size_bytes / self.files


def workload(*, size: Optional[int], files: Optional[int], average_file_size: Optional[int], daily_change: float,
             throughput_mode: str, provisioned_mibps: Optional[float] = None) -> Workload:
    """Two of size / files / average file size determine the third; all three must agree within 1%."""
    given = [v is not None for v in (size, files, average_file_size)]
    if sum(given) < 2:
        raise PlanError("give two of --size, --files, --average-file-size")
    if any(v is not None and v <= 0 for v in (size, files, average_file_size)):
        raise PlanError("the file system must have a size and files (more than 0)")
    if size is None:
        size = files * average_file_size
    elif files is None:
        if not average_file_size:
            raise PlanError("--average-file-size must be more than 0")
        files = max(1, round(size / average_file_size))
    elif average_file_size is not None and abs(size / files - average_file_size) > 0.01 * average_file_size:
        raise PlanError(f"--size / --files is {size / files:.0f} bytes per file, not --average-file-size "
                        f"{average_file_size}; give two of the three")
    if size <= 0 or files <= 0:
        raise PlanError("the file system must have a size and files (more than 0)")
    if throughput_mode not in EFS_LIMITS:
        raise PlanError(f"{throughput_mode!r} is not a throughput mode; expected one of {', '.join(EFS_LIMITS)}")
    if throughput_mode == "provisioned":
        if not provisioned_mibps or provisioned_mibps <= 0:
            raise PlanError("--throughput-mode provisioned needs --provisioned-mibps N (more than 0)")
    elif provisioned_mibps is not None:
        raise PlanError("--provisioned-mibps applies only to --throughput-mode provisioned")
    return Workload(int(size), int(files), daily_change, throughput_mode,
                    provisioned_mibps * MIB if provisioned_mibps else None)


def burst_rates(size_bytes: float) -> Tuple[float, float]:
    """(baseline, burst) metered bytes/s of a bursting file system of this size."""
    baseline = max(BURST_MIN_BASELINE, size_bytes / GIB * BURST_BASELINE_PER_GIB)
    burst = max(BURST_MIN_RATE, size_bytes / TIB * BURST_RATE_PER_TIB)
    return baseline, max(burst, baseline)


def daily_burst_hours(size_bytes: float) -> float:
    """Hours per day a bursting file system can burst on the credits it earns in a day (baseline / burst of 24 h)."""
    baseline, burst = burst_rates(size_bytes)
    return 24 * baseline / burst


def metered_seconds(metered_bytes: float, size_bytes: float, credits: float) -> float:
    """Seconds a bursting file system needs for this many metered bytes: at the burst rate while credits last
    (they drain at burst - baseline), then at the baseline."""
    baseline, burst = burst_rates(size_bytes)
    if burst <= baseline:
        return metered_bytes / baseline
    burst_seconds = credits / (burst - baseline)
    if metered_bytes <= burst * burst_seconds:
        return metered_bytes / burst
    return burst_seconds + (metered_bytes - burst * burst_seconds) / baseline


@dataclass
class RunEstimate:
    kind: str  # "full" | "incremental"
    workers: int  # worker instances
    instance_type: str
    files_scanned: int
    files_copied: int
    bytes_copied: int
    seconds: float
    bottleneck: str
    terms: Dict[str, float] = field(default_factory=dict)  # seconds per limit (the largest binds)
    limited_by: str = "metadata"  # the bottleneck's kind: metadata, throughput or start-up (BOTTLENECK_KINDS)
    streams: int = 1  # engine streams per worker instance


def estimate_run(load: Workload, kind: str, workers: int, instance_type: str,
                 fixed_seconds: float = RUN_FIXED_SECONDS, *, streams: int = 1) -> RunEstimate:
    """One run of ``workers`` instances of ``instance_type``, each running ``streams`` engine streams."""
    if instance_type not in INSTANCE_BASELINE_GBPS:
        raise PlanError(f"{instance_type!r} has no bandwidth figure here; expected one of "
                        f"{', '.join(INSTANCE_BASELINE_GBPS)}")
    if not 1 <= workers <= MAX_WORKERS:
        raise PlanError(f"workers must be 1 to {MAX_WORKERS}")
    if not 1 <= streams <= MAX_STREAMS_PER_WORKER:
        raise PlanError(f"streams must be 1 to {MAX_STREAMS_PER_WORKER}")
    full = kind == "full"
    files_copied = load.files if full else math.ceil(load.files * load.daily_change)
    bytes_copied = load.size_bytes if full else load.size_bytes * load.daily_change
    files_scanned = load.files  # every run walks the whole tree (the engine's files_scanned counts it)
    writes = files_copied * (WRITES_PER_NEW_FILE if full else WRITES_PER_CHANGED_FILE)
    # A first run has nothing to compare with: its scan is the copy's own read of each file on the source. An
    # incremental run compares every file on both sides, then reads each copied file once.
    reads = (0 if full else files_scanned * SCAN_READ_OPS_PER_FILE) + files_copied

    read_iops, write_iops, fs_read, fs_write, per_client = EFS_LIMITS[load.throughput_mode]
    instance_rate = min(INSTANCE_BASELINE_GBPS[instance_type] * 1e9 / 8, per_client)
    share = BALANCE_FACTOR / workers  # the busiest instance's share of the run
    worker_meta = share / streams * (reads * EFS_READ_LATENCY_S + writes * EFS_WRITE_LATENCY_S)
    worker_data = share * bytes_copied / instance_rate

    if load.throughput_mode == "elastic":
        read_time, write_time = bytes_copied / fs_read, bytes_copied / fs_write
        credit_time = 0.0
    elif load.throughput_mode == "provisioned":
        provisioned = max(load.provisioned_bytes_per_s, burst_rates(load.size_bytes)[0])
        read_time = bytes_copied * READ_METERING_FACTOR / min(provisioned, fs_read)
        write_time = bytes_copied / min(provisioned, fs_write)
        credit_time = 0.0
    else:
        baseline, _ = burst_rates(load.size_bytes)
        # A first run on a new file system spends the initial credits; a daily run spends what a day earns.
        credits = BURST_INITIAL_CREDITS if full else baseline * SECONDS_PER_DAY
        read_time = max(metered_seconds(bytes_copied * READ_METERING_FACTOR, load.size_bytes, credits),
                        bytes_copied / fs_read)
        write_time = metered_seconds(bytes_copied, load.size_bytes, credits)
        _, burst = burst_rates(load.size_bytes)
        # Credits bind when the metered time is longer than the whole copy at the burst rate.
        credit_time = write_time if write_time > bytes_copied / burst * 1.0001 else 0.0
        write_time = max(write_time, bytes_copied / fs_write)
        if credit_time and write_time > credit_time:
            credit_time = 0.0
    iops_time = max(reads / 2 / read_iops, writes / write_iops)  # scan reads split over the two file systems

    terms = {
        "metadata": worker_meta,
        "instance network" if instance_rate < per_client else "EFS client limit": worker_data,
        "worker (metadata + data)": worker_meta + worker_data,
        "EFS read throughput": read_time,
        "EFS write throughput": write_time if not credit_time else 0.0,
        "EFS burst credits": credit_time,
        "EFS IOPS": iops_time,
    }
    binding = max(terms["worker (metadata + data)"], read_time, write_time, iops_time)
    if binding == terms["worker (metadata + data)"]:
        bottleneck = "metadata" if worker_meta >= worker_data else (
            "instance network" if instance_rate < per_client else "EFS client limit")
    elif binding == write_time:
        bottleneck = "EFS burst credits" if credit_time else "EFS write throughput"
    elif binding == read_time:
        bottleneck = "EFS read throughput"
    else:
        bottleneck = "EFS IOPS"
    if fixed_seconds > binding:  # a small run: most of its time is starting the instances
        bottleneck = "start-up"
    terms["start-up"] = fixed_seconds
    return RunEstimate(kind, workers, instance_type, files_scanned, files_copied, int(bytes_copied),
                       binding + fixed_seconds, bottleneck, {k: round(v, 1) for k, v in terms.items()},
                       BOTTLENECK_KINDS[bottleneck], streams)


def fleets() -> List[Tuple[int, int, str]]:
    """Every (workers, streams per worker, instance type), cheapest first (price units x workers: streams cost no
    instance), then fewer workers, then fewer streams."""
    return sorted(((w, s, t) for w in range(1, MAX_WORKERS + 1) for s in range(1, MAX_STREAMS_PER_WORKER + 1)
                   for t in INSTANCE_BASELINE_GBPS),
                  key=lambda f: (f[0] * INSTANCE_PRICE_UNITS[f[2]], f[0], f[1]))


def cheapest_fitting(load: Workload, kind: str, window_seconds: float,
                     fixed_seconds: float = RUN_FIXED_SECONDS) -> Tuple[Optional[RunEstimate], RunEstimate]:
    """(the cheapest fleet whose run fits the window or None, the cheapest of the fastest fleets: within 1% of the
    shortest time, as more money buys nothing once a file-system limit binds)."""
    runs = []
    for workers, streams, instance_type in fleets():
        run = estimate_run(load, kind, workers, instance_type, fixed_seconds, streams=streams)
        if run.seconds <= window_seconds:
            return run, run
        runs.append(run)
    shortest = min(run.seconds for run in runs)
    return None, next(run for run in runs if run.seconds <= shortest * 1.01)


@dataclass
class Plan:
    inputs: Dict[str, object]
    window_seconds: float
    incremental: RunEstimate
    full: RunEstimate
    fits: bool
    recommendation: Dict[str, object]
    notes: List[str]
    constants: Dict[str, object]
    margin: float = SAFETY_MARGIN  # share of the window to keep free
    headroom_seconds: float = 0.0  # window - the incremental run (negative: it does not fit)
    warnings: List[str] = field(default_factory=list)

    def to_json(self) -> Dict[str, object]:
        return asdict(self)


def constants() -> Dict[str, object]:
    return {
        "efs_read_latency_s": EFS_READ_LATENCY_S, "efs_write_latency_s": EFS_WRITE_LATENCY_S,
        "writes_per_changed_file": WRITES_PER_CHANGED_FILE, "writes_per_new_file": WRITES_PER_NEW_FILE,
        "scan_read_ops_per_file": SCAN_READ_OPS_PER_FILE, "balance_factor": BALANCE_FACTOR,
        "run_fixed_seconds": RUN_FIXED_SECONDS, "instance_baseline_gbps": dict(INSTANCE_BASELINE_GBPS),
        "efs_limits": {m: dict(zip(("read_iops", "write_iops", "fs_read_Bps", "fs_write_Bps", "client_Bps"), v))
                       for m, v in EFS_LIMITS.items()},
    }


def plan(load: Workload, window_seconds: float, fixed_seconds: float = RUN_FIXED_SECONDS,
         margin: float = SAFETY_MARGIN) -> Plan:
    """The cheapest fleet whose daily (incremental) run leaves ``margin`` of the window free, and what the first
    full run costs. When no fleet leaves the margin: the fastest fleet, with a warning if it fits the window and
    a note if it does not."""
    if window_seconds <= 0:
        raise PlanError("the window must be longer than 0")
    if not 0 <= margin < 1:
        raise PlanError("the safety margin must be at least 0% and less than 100%")
    roomy, _ = cheapest_fitting(load, "incremental", window_seconds * (1 - margin), fixed_seconds)
    # Without a fleet that leaves the margin: the fastest (most headroom), whether it fits the window or not.
    incremental = roomy or cheapest_fitting(load, "incremental", 0, fixed_seconds)[1]
    fits = incremental.seconds <= window_seconds
    full_fit, full_fastest = cheapest_fitting(load, "full", window_seconds, fixed_seconds)
    # The first run with the recommended fleet (it may exceed the window: the first run is a one-off), and the
    # fleet that would make it fit (pass it with `efs-backup run --workers N --streams S`).
    full = estimate_run(load, "full", incremental.workers, incremental.instance_type, fixed_seconds,
                        streams=incremental.streams)
    notes = [
        "both file systems in %s mode, General Purpose; no other load on the production file system during the "
        "window; the backup file system sized like production; the daily change is the change per run"
        % load.throughput_mode,
    ]
    if incremental.streams > 1:
        notes.append("each worker runs %d engine streams: the model overlaps their metadata round trips, shares the "
                     "worker's network among them and counts no CPU for them" % incremental.streams)
    if not fits:
        notes.append("no fleet of up to %d workers x %d streams fits the incremental run into the window: the "
                     "bottleneck is %s; shown is the fastest fleet"
                     % (MAX_WORKERS, MAX_STREAMS_PER_WORKER, incremental.bottleneck))
    if full.seconds > window_seconds:
        if full_fit:
            notes.append("the first full run takes longer than the window with this fleet; start it by hand with "
                         "%s (%s: efs-backup run --workers %d --streams %d) or let it run past the window once"
                         % (fleet_text(full_fit), format_duration(full_fit.seconds), full_fit.workers,
                            full_fit.streams))
        else:
            notes.append("the first full run cannot fit the window with any fleet (fastest: %s, %s, "
                         "bottleneck %s); run it once outside the schedule"
                         % (fleet_text(full_fastest), format_duration(full_fastest.seconds),
                            full_fastest.bottleneck))
    if load.throughput_mode == "bursting":
        notes.append("bursting: %.1f burst hours a day at this size (baseline %.1f MiB/s, burst %.0f MiB/s)"
                     % ((daily_burst_hours(load.size_bytes),) + tuple(r / MIB for r in burst_rates(load.size_bytes))))
    warnings = []
    headroom = window_seconds - incremental.seconds
    if fits and not roomy:
        warnings.append("the incremental run leaves %s of the %s window (%.0f%%), less than the %.0f%% safety "
                        "margin, even with the fastest fleet (the bottleneck is %s): a busier day or slower EFS would "
                        "overrun it; widen the window or reduce what a run must do"
                        % (format_duration(headroom), format_duration(window_seconds),
                           100 * headroom / window_seconds, 100 * margin, incremental.bottleneck))
    recommendation = {"workers": incremental.workers, "streams": incremental.streams,
                      "instance_type": incremental.instance_type,
                      "cdk_context": "-c worker_count=%d -c worker_streams=%d -c worker_instance_type=%s"
                                     % (incremental.workers, incremental.streams, incremental.instance_type)}
    return Plan(
        inputs={"size_bytes": load.size_bytes, "files": load.files,
                "average_file_size": round(load.average_file_size), "daily_change": load.daily_change,
                "throughput_mode": load.throughput_mode,
                "provisioned_mibps": load.provisioned_bytes_per_s / MIB if load.provisioned_bytes_per_s else None},
        window_seconds=window_seconds, incremental=incremental, full=full, fits=fits,
        recommendation=recommendation, notes=notes, constants=constants(), margin=margin,
        headroom_seconds=headroom, warnings=warnings,
    )


# ----------------------------------------------------------------------------------------------- formatting


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 3600:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if count < 1024 or unit == "PiB":
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1024.0
    return str(count)


def fleet_text(run: RunEstimate) -> str:
    """'4 x m6i.large, 8 streams each'."""
    return "%d x %s, %d stream%s each" % (run.workers, run.instance_type, run.streams,
                                          "" if run.streams == 1 else "s")


def what_helps(run: RunEstimate) -> str:
    """WHAT_HELPS for this run's bottleneck, unless this fleet is already at that end of the range."""
    largest = max(INSTANCE_BASELINE_GBPS, key=INSTANCE_BASELINE_GBPS.get)
    if run.bottleneck == "metadata" and run.workers >= MAX_WORKERS and run.streams >= MAX_STREAMS_PER_WORKER:
        return "already %d workers x %d streams, the most a run takes" % (MAX_WORKERS, MAX_STREAMS_PER_WORKER)
    if run.bottleneck == "metadata" and run.workers >= MAX_WORKERS:
        return "already %d workers, the most a run takes: more streams per worker shorten it" % MAX_WORKERS
    if run.bottleneck == "instance network" and run.instance_type == largest:
        return "already the largest instance type here (%s)" % largest
    return WHAT_HELPS[run.bottleneck]


def format_decimal_bytes(count: float) -> str:
    """Decimal units, as disks and some consoles show sizes: 5.0 TB."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return ("%d %s" % (count, unit)) if unit == "B" else ("%.1f %s" % (count, unit))
        count /= 1000.0
    return str(count)


def format_count(count: float) -> str:
    return f"{int(count):,}"


def human(result: Plan) -> str:
    inputs = result.inputs
    window = result.window_seconds
    lines = [
        "workload: %s (%s) in %s files (average %s), %s changed per run, %s throughput, window %s" % (
            format_bytes(inputs["size_bytes"]), format_decimal_bytes(inputs["size_bytes"]),
            format_count(inputs["files"]), format_bytes(inputs["average_file_size"]),
            format_percent(inputs["daily_change"]), inputs["throughput_mode"], format_duration(window)),
        "recommended: %s  (%s)%s" % (fleet_text(result.incremental), result.recommendation["cdk_context"],
                                     "  -- does NOT fit the window" if not result.fits else
                                     "  -- fits, but without the safety margin" if result.warnings else
                                     "  -- the cheapest fleet that leaves the %.0f%% safety margin"
                                     % (100 * result.margin)),
    ]
    for run in (result.incremental, result.full):
        kind = "" if run.limited_by == run.bottleneck else " [%s]" % run.limited_by
        lines.append("  %-11s %7s  bottleneck: %s%s; %s" % (
            run.kind, format_duration(run.seconds), run.bottleneck, kind, what_helps(run)))
        lines.append("  %-11s %7s  scanned %s files, copied %s files / %s" % (
            "", "", format_count(run.files_scanned), format_count(run.files_copied), format_bytes(run.bytes_copied)))
    if result.headroom_seconds >= 0:
        lines.append("  headroom: the incremental run leaves %s of the window free (%.0f%%; safety margin %.0f%%)" % (
            format_duration(result.headroom_seconds), 100 * result.headroom_seconds / window, 100 * result.margin))
    lines.extend("  warning: " + warning for warning in result.warnings)
    lines.extend("  note: " + note for note in result.notes)
    return "\n".join(lines)


def format_percent(fraction: float) -> str:
    return ("%.2f%%" % (100 * fraction)).replace(".00%", "%")


# ----------------------------------------------------------------------------------------------- the old table

# The retired AWS Data Pipeline solution's sizing table (Amazon EFS User Guide, "Backing Up Amazon EFS File Systems
# Using AWS Data Pipeline", section "Performance for Amazon EFS Backups Using AWS Data Pipeline"; github.com/awsdocs/
# amazon-efs-user-guide doc_source/alternative-efs-backup.md): 30 MB average file size, a 15-minute backup window,
# bursting file systems. Columns: EFS size, daily change volume ("less than"), remaining burst hours, minimum agents.
OLD_TABLE_WINDOW_SECONDS = 15 * 60
OLD_TABLE_AVERAGE_FILE_SIZE = 30 * 1000 ** 2
OLD_TABLE: Tuple[Tuple[str, str, float, str], ...] = (
    ("256GB", "25GB", 6.75, "1 x m3.medium"),
    ("512GB", "50GB", 7.75, "1 x m3.large"),
    ("1TB", "75GB", 11.75, "2 x m3.large"),
    ("1.5TB", "125GB", 11.75, "2 x m3.xlarge"),
    ("2TB", "175GB", 11.75, "3 x m3.large"),
    ("3TB", "250GB", 11.75, "4 x m3.xlarge"),
)


def old_table_rows() -> List[Dict[str, object]]:
    """Each old row through this model: the same size, 30 MB files, the row's daily change, bursting, 15 minutes.
    'remaining burst hours' = the day's burst hours minus the hours the incremental run spends."""
    rows = []
    for size_text, change_text, old_hours, old_agents in OLD_TABLE:
        # The old table's "GB"/"TB" are the binary sizes EFS bills and meters in (GiB/TiB).
        size = parse_size(size_text.replace("GB", "GiB").replace("TB", "TiB"))
        change = parse_size(change_text.replace("GB", "GiB"))
        load = workload(size=size, files=None, average_file_size=OLD_TABLE_AVERAGE_FILE_SIZE,
                        daily_change=change / size, throughput_mode="bursting")
        # The old 15 minutes are the copy alone (Data Pipeline started the instance beforehand): no fixed cost.
        result = plan(load, OLD_TABLE_WINDOW_SECONDS, fixed_seconds=0, margin=0)  # the old table kept none
        _, burst = burst_rates(size)
        remaining = daily_burst_hours(size) - result.incremental.bytes_copied / burst / 3600
        rows.append({"size": size_text, "daily_change": change_text, "old_remaining_burst_hours": old_hours,
                     "old_agents": old_agents, "model_remaining_burst_hours": round(remaining, 2),
                     "model_daily_burst_hours": round(daily_burst_hours(size), 2),
                     "model_workers": result.incremental.workers, "model_streams": result.incremental.streams,
                     "model_instance_type": result.incremental.instance_type,
                     "model_incremental_seconds": round(result.incremental.seconds),
                     "model_bottleneck": result.incremental.bottleneck, "fits": result.fits})
    return rows
