"""Limits that the configuration, the state machines, the engine and the planner must agree on."""

# EFS allows 177 hard links per file ("Quotas for Amazon EFS", NFS client quotas:
# https://docs.aws.amazon.com/efs/latest/ug/limits.html). Every tree kept for a backup-id (snapshots, spares,
# work trees) adds one link to each unchanged file, so no more trees than this are kept.
EFS_HARD_LINK_LIMIT = 177
MAX_LINKED_TREES = 170
MAX_RETAIN = MAX_LINKED_TREES - 1

# Workers per run: what the backup and restore state machines accept (the subnets are spread from a list of
# this length) and the most the planner proposes.
MAX_WORKERS = 32

# Engine streams per worker instance (worker_streams, a run's or restore's "streams"): each stream is one engine
# process claiming parts, so W instances run W x S streams. Latency-bound metadata work overlaps across the streams
# of one instance (AWS recommends many parallel threads per client for EFS copies: "Parallelize your data copy",
# https://docs.aws.amazon.com/efs/latest/ug/performance-tips.html); one instance's network bandwidth does not grow.
MAX_STREAMS_PER_WORKER = 16
