"""Exceptions and the exit codes they map to (documented in the README)."""

EXIT_OK = 0
EXIT_WARNINGS = 2
EXIT_FAILED = 1
EXIT_REFUSED = 3
EXIT_BUSY = 4
EXIT_USAGE = 64


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
