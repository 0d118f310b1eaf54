"""The times operators give (a restore's ``at``): ISO 8601 as people write it, parsed the same way on Python 3.9
(the workers: Amazon Linux 2023) and later.

Parsed by hand: Python 3.9's ``datetime.fromisoformat`` rejects ``Z`` and fractions of other than 3 or 6 digits
(https://docs.python.org/3.9/library/datetime.html#datetime.datetime.fromisoformat: "this does not support parsing
arbitrary ISO 8601 strings"; 3.11 widened it), so what it accepts would depend on where it runs.

Accepted: ``YYYY-MM-DD``, then ``T``, ``t`` or a space and ``HH:MM``, optionally ``:SS`` and 1 to 6 fractional
digits after ``.`` or ``,`` (microseconds), then ``Z``/``z`` or an offset ``+01:00``, ``+0100`` or ``+01``.
A date alone, or a time without a zone, is accepted only where the caller says what it means (``naive_utc``).
"""

import calendar
import datetime
import re
import time

_ISO_TIME = re.compile(
    r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[Tt ](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:[.,](?P<fraction>[0-9]{1,6}))?)?"
    r"(?:(?P<utc>[Zz])|(?P<sign>[+-])(?P<off_h>[0-9]{2})(?::?(?P<off_m>[0-9]{2}))?)?)?$")

EXAMPLES = "2026-11-20T00:00:00Z, 2026-11-20 01:00+01:00 or 2026-11-20T00:00:00.5Z"


def parse_time(text, naive_utc=False):
    """ISO 8601 (module docstring) -> epoch seconds (float, microseconds kept). Raises ValueError for anything
    else; a date alone or a time without a zone only with ``naive_utc`` (then it is UTC)."""
    match = _ISO_TIME.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError("%r is not an ISO 8601 date and time such as %s" % (text, EXAMPLES))
    zoned = match.group("utc") or match.group("sign")
    if not zoned and not naive_utc:
        raise ValueError("%r has no time zone: add Z or an offset such as +01:00" % text)
    year, month, day = (int(part) for part in match.group("date").split("-"))
    fraction = match.group("fraction") or ""
    # datetime() checks every field's range (month 13, February 30, hour 24, second 60 all raise ValueError).
    moment = datetime.datetime(year, month, day, int(match.group("hour") or 0), int(match.group("minute") or 0),
                               int(match.group("second") or 0), int(fraction.ljust(6, "0") or 0))
    offset = 0
    if match.group("sign"):
        hours, minutes = int(match.group("off_h")), int(match.group("off_m") or 0)
        if hours > 23 or minutes > 59:
            raise ValueError("%r has an offset out of range (at most +/-23:59)" % text)
        offset = (hours * 3600 + minutes * 60) * (1 if match.group("sign") == "+" else -1)
    return calendar.timegm(moment.timetuple()) - offset + moment.microsecond / 1e6


def format_utc(epoch):
    """Epoch seconds -> 'YYYY-MM-DDTHH:MM:SSZ' (the second it falls in)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch // 1)))
