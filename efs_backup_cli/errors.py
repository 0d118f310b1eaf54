"""Exit codes and the one exception every command raises to end with a one-line message."""

from __future__ import annotations

from typing import Any, Dict, Optional

# The engine's codes (efs_backup_contract.exits), with the same meaning for the CLI:
# 1 the run (backup or restore) failed, or did not finish while we waited; 2 succeeded with warnings (or `status`:
# something needs attention); 3 refused / invalid request / declined / nothing to restore; 4 another run holds the
# backup-id; 64 usage.
from efs_backup_contract.exits import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_WARNINGS

__all__ = ["EXIT_OK", "EXIT_FAILED", "EXIT_WARNINGS", "EXIT_REFUSED", "EXIT_BUSY", "EXIT_USAGE", "EXIT_ENVIRONMENT",
           "EXIT_INTERRUPTED", "CliError"]

EXIT_ENVIRONMENT = 5  # credentials, unknown environment, stack not deployed, output missing
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """Ends the command with ``message`` on stderr and exit code ``code``; with ``--json`` also as the one JSON
    document on stdout, ``{"error": message, "exit_code": code, **details}``."""

    def __init__(self, message: str, code: int, details: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = dict(details or {})
