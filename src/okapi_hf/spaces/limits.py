"""What a Space does with values a visitor sends: check them at a bounded cost, echo them short.

A visitor is anyone with the URL, browser or script: a value may be of any JSON type and any size,
whatever the page's widgets allow. Every check here costs at most a few operations per allowed item
(a list longer than its cap is refused by its length, unread), and a refused value is echoed at most
:data:`ECHO_CHARS` characters long, so a megabyte sent is not a megabyte shown back. Choices are
compared as plain strings, never as patterns. Also here: the redaction of credentials in URLs,
for anything a Space shows or logs.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from typing import Any

from okapi_hf.errors import OkapiError

ECHO_CHARS = 60  # the longest piece of a visitor's value quoted back in a message
MAX_CHOICE_CHARS = 200  # longer than any choice a Space offers: refused without a lookup

_echo = reprlib.Repr()
_echo.maxstring = ECHO_CHARS
_echo.maxother = ECHO_CHARS
_echo.maxlist = _echo.maxtuple = _echo.maxdict = _echo.maxset = 4
_echo.maxlevel = 2


class InputRefused(OkapiError, ValueError):
    """A visitor's value that a Space will not use; the text is meant for the visitor."""


def echo(value: Any) -> str:
    """A short, bounded ``repr`` of any value, for messages (strings cut, lists and nesting elided)."""
    try:
        return _echo.repr(value)
    except (ValueError, RecursionError):  # an int too long to print, a self-containing structure
        return f"<a {type(value).__name__}>"


def one_of(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of ``choices`` (compared as strings, exactly); else :class:`InputRefused`."""
    if isinstance(value, str) and len(value) <= MAX_CHOICE_CHARS and value in choices:
        return value
    raise InputRefused(f"unknown {name} {echo(value)}; expected one of {', '.join(choices)}")


def optional_one_of(value: Any, name: str, choices: Sequence[str]) -> str | None:
    """:func:`one_of`, where ``None`` or an empty string means "not given" (``None``)."""
    return None if value is None or value == "" else one_of(value, name, choices)


def some_of(value: Any, name: str, choices: Sequence[str], *, max_items: int) -> list[str]:
    """A list of distinct ``choices`` (order kept) from a list or tuple of at most ``max_items`` strings."""
    if not isinstance(value, (list, tuple)):
        raise InputRefused(f"{name} must be a list of strings, got {type(value).__name__} {echo(value)}")
    if len(value) > max_items:
        raise InputRefused(f"{name}: {len(value)} values; at most {max_items} are accepted")
    item_name = name.removesuffix("s")
    return list(dict.fromkeys(one_of(item, item_name, choices) for item in value))


def redact_credentials(text: str) -> str:
    """``text`` with the credentials of any URL in it masked: ``user:key@`` and secret query values.

    For whatever a Space shows or logs that might hold a URL its owner configured.
    """
    from okapi_hf.create.llm_types import redact

    return redact(text)
