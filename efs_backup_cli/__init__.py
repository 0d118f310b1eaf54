"""efs-backup operator CLI: run, follow, status, list, restore, logs and the sizing planner (see main.py)."""

__version__ = "1.1.0"  # the one definition: pyproject.toml reads it (dynamic version)
