"""Parsers of the keys of the runs: how many snapshots each interval keeps, when its runs start, and who hears of
them."""

from __future__ import annotations

import re
from typing import Any, Optional

from efs_backup_contract.limits import MAX_RETAIN
from settings.parsers import Invalid, describe, integer, is_none, list_of, matches, string

SCHEDULE = re.compile(
    r"^(?:cron\((?:\S+ ){5}\S+\)|rate\((?:1 (?:minute|hour|day)|[1-9][0-9]* (?:minutes|hours|days))\))$"
)
EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+$")
TIMEZONE = re.compile(r"^(?:UTC|[A-Za-z_]+(?:/[A-Za-z0-9_+-]+)+)$")


def retain(value: Any) -> int:
    return integer(value, 0, MAX_RETAIN)


def schedule(value: Any) -> Optional[str]:
    if is_none(value):
        return None
    expectation = "none, cron(<6 fields>) or rate(<n> minutes|hours|days), as EventBridge Scheduler takes them"
    text = string(value, expectation)
    if not SCHEDULE.fullmatch(text):
        raise Invalid(f"{describe(value)} is not a schedule expression; expected {expectation}")
    return text


emails = list_of(
    matches(EMAIL), not_a="an e-mail address",
    expectation="a list of e-mail addresses (comma-separated with -c), or an empty list",
    none_is_empty=False, skip_blank=True)
