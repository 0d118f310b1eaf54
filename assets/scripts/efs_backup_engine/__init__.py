"""efs-backup engine: crash-safe, incremental hard-link snapshots of one directory tree into another.

Python 3.9 standard library only (Amazon Linux 2023's python3), plus the rsync binary.
"""

ENGINE_VERSION = "1.0.0"
