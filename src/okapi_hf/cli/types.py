"""What every command shares: argparse value types, the help formatter and deprecated flag spellings."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

# Old spellings used in this run: {old: new}; main() says so on stderr, once, before the command runs.
DEPRECATED_USED: dict[str, str] = {}


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter that ends each flag's help with ``(default: X)`` when it has a default.

    Flags without a value (``--gpu``) and flags whose default is None say nothing: their help says what
    happens when they are not given.
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or default is None
            or default is False
            or default is argparse.SUPPRESS
            or action.nargs == 0
            or not (action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE))
        ):
            return text
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


class LazyDefault(argparse._StoreAction):
    """A flag whose default is looked up when first read (its module is slow to import)."""

    def __init__(self, *args: Any, load: Callable[[], Any], **kwargs: Any) -> None:
        self._load = load
        super().__init__(*args, **kwargs)

    @property
    def default(self) -> Any:
        return self._load()

    @default.setter
    def default(self, value: Any) -> None:
        """argparse sets the default at construction: the loader gives it instead."""


def add_parser(
    subparsers: argparse._SubParsersAction, name: str, help: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A subcommand whose help shows defaults; ``description`` is the help unless given."""
    kwargs.setdefault("description", help)
    return subparsers.add_parser(name, help=help, formatter_class=HelpFormatter, **kwargs)


def add_choice(
    p: argparse.ArgumentParser, flag: str, choices: Sequence[str], default: str, help: str, **kwargs: Any
) -> None:
    """A flag that takes one of ``choices``, with its default (the formatter shows it)."""
    p.add_argument(flag, choices=list(choices), default=default, help=help, **kwargs)


class _Deprecated(argparse.Action):
    """An old spelling of a flag: stores into the new one's ``dest`` and records the use."""

    def __init__(self, option_strings: list[str], dest: str, new: str, **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        DEPRECATED_USED[option_string or self.option_strings[0]] = self.new


def add_deprecated(p: argparse.ArgumentParser, old: str, new: str) -> None:
    """Accept ``old`` for one more release as a hidden spelling of the flag ``new`` (already added)."""
    action = next(a for a in p._actions if new in a.option_strings)
    p.add_argument(
        old, dest=action.dest, new=new, action=_Deprecated, type=action.type, metavar=action.metavar
    )


def warn_deprecated() -> None:
    """One line on stderr naming the new spelling of every old one used; then forget them."""
    if DEPRECATED_USED:
        pairs = ", ".join(f"{old} -> {new}" for old, new in DEPRECATED_USED.items())
        print(
            f"okapi-hf: warning: deprecated spelling, removed in the next release: {pairs}",
            file=sys.stderr,
        )
        DEPRECATED_USED.clear()


def positive_int(text: str) -> int:
    """argparse type: a whole number of 1 or more (--max-tokens)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def positive_float(text: str) -> float:
    """argparse type: a number of seconds above 0 (--timeout)."""
    value = _finite(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return value


def temperature(text: str) -> float:
    """argparse type: a temperature, 0 or more."""
    value = _finite(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected a number of 0 or more, got {text!r}")
    return value


def top_p(text: str) -> float:
    """argparse type: a probability mass in (0, 1]."""
    value = _finite(text)
    if value is None or not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number above 0 and at most 1, got {text!r}")
    return value


def count(text: str) -> int:
    """argparse type: a row count, zero or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a count of zero or more, got {text!r}")
    return int(text)


LANGS_HELP = "comma-separated codes, a group (high, medium, low, extra), okapi (the 26) or all"
