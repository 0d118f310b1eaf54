"""What the CLI checks before it starts anything, from the one definition both sides share
(``efs_backup_contract.limits``): the state machines validate the same limits; checking them here first means a bad
value is a one-line usage error instead of a started (and failed) execution.
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable, Optional

from efs_backup_contract.limits import MAX_STREAMS_PER_WORKER, MAX_WORKERS

from efs_backup_cli.errors import EXIT_USAGE, CliError


def max_workers() -> int:
    """Workers per run, 1..MAX_WORKERS: what the backup and restore state machines accept (their ValidateInput)."""
    return MAX_WORKERS


def max_streams() -> int:
    """Engine streams per worker, 1..MAX_STREAMS_PER_WORKER: what both state machines accept (CheckStreamCount)."""
    return MAX_STREAMS_PER_WORKER


def check_workers(count: int, flag: str = "--workers") -> int:
    limit = max_workers()
    if not 1 <= count <= limit:
        raise CliError(f"{flag} {count}: a run takes 1 to {limit} workers (the state machine refuses more)",
                       EXIT_USAGE)
    return count


def _snake(name: str) -> str:
    """RetainDaily / retain-daily / RETAIN_DAILY -> retain_daily."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).replace("-", "_").lower()


def closest_key(name: str, known: Iterable[str]) -> Optional[str]:
    """The known key ``name`` most likely means: its snake_case spelling, else the closest by difflib."""
    known = sorted(known)
    snake = _snake(name)
    if snake in known:
        return snake
    matches = difflib.get_close_matches(snake, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def check_context_keys(overrides: Iterable[str], known: Iterable[str], reserved: Iterable[str] = ()) -> None:
    """Every ``-c key=value`` must name a key the CLI takes (``known``): an unknown one is an error naming the
    closest key (``npx cdk`` would ignore a misspelt key and use the default; the CLI must not act on settings the
    operator did not mean)."""
    known = list(known)
    for item in overrides:
        key, sep, _ = item.partition("=")
        if not sep or not key:
            raise CliError(f"-c {item!r}: expected key=value", EXIT_USAGE)
        if key in reserved:
            raise CliError(f"-c {key}: choose the environment with --env NAME (or EFS_BACKUP_ENV)", EXIT_USAGE)
        if key not in known:
            hint = closest_key(key, known)
            suggestion = f"; did you mean {hint!r}?" if hint else ""
            raise CliError(f"-c {key}: unknown configuration key{suggestion} (the CLI reads the deployment's "
                           f"settings from the stack; -c replaces one of: {', '.join(known)})", EXIT_USAGE)
