"""efs-backup engine: crash-safe, incremental hard-link snapshots of one directory tree into another.

Python 3.9 standard library only (Amazon Linux 2023's python3), plus the rsync binary.
"""

import os

ENGINE_VERSION = "1.0.0"
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(**extra):
    """The environment of an engine process another one starts (a worker's streams, the local runner's workers, a
    part's source lister): this package importable from where it is, whatever the starting process was given."""
    return dict(os.environ, PYTHONPATH=PACKAGE_PARENT, **extra)
