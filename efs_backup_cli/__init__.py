"""efs-backup operator CLI: run, status, list, restore, logs and the sizing planner (see main.py)."""
