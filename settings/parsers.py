"""The generic value parsers every configuration key is built from: strings, patterns, numbers, booleans, choices
and lists.

A parser takes the raw value (from cdk.json, or a string from ``-c key=value``, which always arrives as a string) and
returns the typed value or raises ``Invalid`` with a message that follows ``<value> ... expected ...``; the loader
prefixes the key. Integers and booleans are coerced from strings strictly.
"""

from __future__ import annotations

import re
from typing import Any, Callable, List, Optional, Sequence, Tuple

_INTEGER_STRING = re.compile(r"^-?[0-9]+$")
_NUMBER_STRING = re.compile(r"^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")


class Invalid(Exception):
    """One problem with one value; the message follows ``<key>: <value> ...``."""


def describe(value: Any) -> str:
    return repr(value)


def string(value: Any, expectation: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{describe(value)} is not a string; expected {expectation}")
    return value


def pattern(regex: re.Pattern, what: str, expectation: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = string(value, expectation)
        if not regex.fullmatch(text):
            raise Invalid(f"{describe(value)} is not {what} ({expectation})")
        return text

    return parse


def is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))


def integer(value: Any, low: int, high: int) -> int:
    expectation = f"a whole number from {low} to {high}"
    if isinstance(value, bool):
        raise Invalid(f"{describe(value)} is a boolean; expected {expectation}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INTEGER_STRING.fullmatch(value):
        number = int(value)
    else:
        raise Invalid(f"{describe(value)} is not a whole number; expected {expectation}")
    if not low <= number <= high:
        raise Invalid(f"{describe(value)} is out of range; expected {expectation}")
    return number


def int_range(low: int, high: int) -> Callable[[Any], int]:
    return lambda value: integer(value, low, high)


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise Invalid(f"{describe(value)} is not a boolean; expected true or false")


def choice(choices: Sequence[str]) -> Callable[[Any], str]:
    listed = ", ".join(choices)

    def parse(value: Any) -> str:
        if value not in choices:
            raise Invalid(f"{describe(value)} is not a valid choice; expected one of {listed}")
        return value

    return parse


def optional_int(low: int, high: int) -> Callable[[Any], Optional[int]]:
    def parse(value: Any) -> Optional[int]:
        if is_none(value):
            return None
        return integer(value, low, high)

    return parse


def number_range(low: float, high: float) -> Callable[[Any], float]:
    expectation = f"a number from {low:g} to {high:g}"

    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise Invalid(f"{describe(value)} is a boolean; expected {expectation}")
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str) and _NUMBER_STRING.fullmatch(value):
            number = float(value)
        else:
            raise Invalid(f"{describe(value)} is not a number; expected {expectation}")
        if not low <= number <= high:
            raise Invalid(f"{describe(value)} is out of range; expected {expectation}")
        return number

    return parse


# ----------------------------------------------------------------------------------------------------------- lists


def list_items(value: Any, expectation: str, *, none_is_empty: bool = True, skip_blank: bool = False) -> List[Any]:
    """The one reader of list values: a list from cdk.json, or a comma-separated string from -c (items stripped).

    ``none``/``null``/empty is the empty list unless ``none_is_empty`` is false (then only a list or a string is
    one); ``skip_blank`` drops the empty items of a string (``a@x.org,`` is one address)."""
    if none_is_empty and (is_none(value) or value == ""):
        return []
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
        return [item for item in items if item] if skip_blank else items
    if isinstance(value, (list, tuple)):
        return list(value)
    raise Invalid(f"{describe(value)} is not a list; expected {expectation}")


def list_of(
    accepts: Callable[[Any], bool],
    *,
    not_a: str,
    expectation: str,
    twice: Optional[Tuple[str, str]] = None,
    none_is_empty: bool = True,
    skip_blank: bool = False,
) -> Callable[[Any], Tuple[Any, ...]]:
    """A parser of a list whose items ``accepts`` (see ``list_items``); each bad item is named (``<item> is not
    <not_a>``). ``twice`` = (a noun with its article, the noun alone) refuses an item listed twice."""

    def parse(value: Any) -> Tuple[Any, ...]:
        items = list_items(value, expectation, none_is_empty=none_is_empty, skip_blank=skip_blank)
        bad = [item for item in items if not accepts(item)]
        if bad:
            raise Invalid(f"{', '.join(map(describe, bad))} is not {not_a}; expected {expectation}")
        if twice and len(set(items)) != len(items):
            raise Invalid(f"{describe(value)} lists {twice[0]} twice; expected each {twice[1]} once")
        return tuple(items)

    return parse


def matches(regex: "re.Pattern[str]") -> Callable[[Any], bool]:
    """An item test for ``list_of``: a string that matches regex."""
    return lambda item: isinstance(item, str) and bool(regex.fullmatch(item))
