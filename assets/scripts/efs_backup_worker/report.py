"""What a worker reports to Step Functions besides the engine's JSON: the error name of an engine exit code and the
failed parts an engine result lists (for send-task-failure's cause)."""

import json

from efs_backup_contract.exits import error_name

__all__ = ["error_name", "failed_parts"]


def failed_parts(engine_output):
    """The ``failed`` parts of the engine's JSON result, comma-separated, for a failure's cause."""
    try:
        result = json.loads(engine_output)
    except ValueError:
        return "(unreadable engine output)"
    failed = result.get("failed", []) if isinstance(result, dict) else None
    if not isinstance(failed, list):
        return "(unreadable engine output)"
    return ", ".join(str(part) for part in failed) or "(none listed)"
