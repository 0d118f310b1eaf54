#!/usr/bin/env bash
# The OLD rotate-then-sync backup algorithm (AWS Data Pipeline efs-backup scripts), for the
# benchmark only: it is the baseline to measure against, not something to use.
#
# Per run, as ../shared/NOTES.md describes it:
#   1. rm -rf DEST/INTERVAL.(RETAIN-1)                  (expire the oldest, before copying anything)
#   2. mv DEST/INTERVAL.(k-1) -> DEST/INTERVAL.k        for k = RETAIN-1 .. 2 (top down)
#   3. cp -al DEST/INTERVAL.0 DEST/INTERVAL.1           (full hard-link copy of the newest)
#   4. rsync -a --delete --numeric-ids SOURCE/ DEST/INTERVAL.0/
#   5. touch DEST/INTERVAL.0
# Multi-node splitting is not reproduced here (the benchmark computes that split separately).
#
# Usage: old_rotate_sync.sh --source DIR --dest DIR [--interval daily] [--retain 3]
# Exit status: rsync's (0 ok, 23/24 partial), or 64 on bad usage.
set -euo pipefail

usage() {
    echo "usage: $0 --source DIR --dest DIR [--interval NAME] [--retain N]" >&2
    exit 64
}

source_dir=""
dest_dir=""
interval="daily"
retain=3

while (($# > 0)); do
    case "$1" in
        --source) source_dir="${2:-}"; shift 2 || usage ;;
        --dest) dest_dir="${2:-}"; shift 2 || usage ;;
        --interval) interval="${2:-}"; shift 2 || usage ;;
        --retain) retain="${2:-}"; shift 2 || usage ;;
        -h|--help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done

[[ -n "$source_dir" && -n "$dest_dir" && -n "$interval" ]] || usage
[[ "$retain" =~ ^[1-9][0-9]*$ ]] || { echo "--retain must be a positive integer" >&2; exit 64; }
[[ -d "$source_dir" ]] || { echo "source is not a directory: $source_dir" >&2; exit 64; }

mkdir -p -- "$dest_dir"
last=$((retain - 1))

# 1. expire the oldest snapshot first
if [[ -d "$dest_dir/$interval.$last" ]]; then
    rm -rf -- "${dest_dir:?}/$interval.$last"
fi

# 2. rotate every older snapshot up one level, top down (.0 is copied, not moved)
for ((k = last; k >= 2; k--)); do
    if [[ -d "$dest_dir/$interval.$((k - 1))" ]]; then
        mv -- "$dest_dir/$interval.$((k - 1))" "$dest_dir/$interval.$k"
    fi
done

# 3. hard-link copy of the newest snapshot
if ((retain > 1)) && [[ -d "$dest_dir/$interval.0" ]]; then
    cp -al -- "$dest_dir/$interval.0" "$dest_dir/$interval.1"
fi

# 4. sync the source over the newest snapshot, in place
status=0
rsync -a --delete --numeric-ids -- "$source_dir/" "$dest_dir/$interval.0/" || status=$?

# 5. mark it
touch -- "$dest_dir/$interval.0"
exit "$status"
