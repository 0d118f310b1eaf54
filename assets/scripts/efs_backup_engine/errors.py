"""Exceptions and the exit codes they map to (the codes are the contract's: efs_backup_contract.exits)."""

from efs_backup_contract.exits import EXIT_BUSY, EXIT_FAILED, EXIT_REFUSED


class EngineError(Exception):
    """A run cannot go on; nothing has been promoted."""

    exit_code = EXIT_FAILED


class Refused(EngineError):
    """A precondition failed (wrong or missing file system, bad arguments): nothing was touched."""

    exit_code = EXIT_REFUSED


class Busy(EngineError):
    """Another live run holds the backup-id's lock."""

    exit_code = EXIT_BUSY


class LockLost(EngineError):
    """This run's lock was released or taken over; stop touching the backup."""
