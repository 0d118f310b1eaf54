"""The engine's exit codes and the error names a worker reports for them (send-task-failure's ``error``).

The state machines catch these names, the CLI maps them back to its own exit codes, and worker.sh's mapping is
tested against ``ERROR_NAMES`` (tests/contract/)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_WARNINGS = 2
EXIT_REFUSED = 3
EXIT_BUSY = 4
EXIT_USAGE = 64

ERROR_NAMES = {EXIT_FAILED: "EngineFailed", EXIT_REFUSED: "EngineRefused", EXIT_BUSY: "EngineBusy"}
ENGINE_FAILED, ENGINE_REFUSED, ENGINE_BUSY = (ERROR_NAMES[code] for code in (EXIT_FAILED, EXIT_REFUSED, EXIT_BUSY))


def error_name(exit_code):
    """The error name a worker reports for an engine exit code (an unexpected code keeps its number)."""
    return ERROR_NAMES.get(exit_code, "EngineExit%d" % exit_code)
