"""okapi-hf: one command line over every stage; each subcommand is a thin call into the API.

The commands live in :mod:`okapi_hf.cli.general` (languages, models, chat, publish), :mod:`~okapi_hf.cli.data`,
:mod:`~okapi_hf.cli.train` (train, quickstart) and :mod:`~okapi_hf.cli.eval`; what they share (value types,
the help formatter, old flag spellings) in :mod:`~okapi_hf.cli.types`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from okapi_hf import __version__
from okapi_hf.cli.data import add_data_commands
from okapi_hf.cli.eval import add_eval_commands
from okapi_hf.cli.general import add_chat_command, add_general_commands, add_publish_command
from okapi_hf.cli.train import add_quickstart_command, add_train_commands
from okapi_hf.cli.types import DEPRECATED_USED, HelpFormatter, warn_deprecated
from okapi_hf.errors import OkapiError
from okapi_hf.fsutil import is_disk_full

__all__ = ["build_parser", "error_line", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree: ``okapi-hf COMMAND [SUBCOMMAND] ...``."""
    parser = argparse.ArgumentParser(
        prog="okapi-hf", description=__doc__.split("\n")[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"okapi-hf {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="what to do")
    add_general_commands(commands)
    add_quickstart_command(commands)
    add_train_commands(commands)
    add_eval_commands(commands)
    add_chat_command(commands)
    add_publish_command(commands)
    add_data_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``okapi-hf ARGV``: exit code 0, 1 (an error, said in one line), 2 (usage) or 130 (interrupted)."""
    parser = build_parser()
    DEPRECATED_USED.clear()  # what an earlier call in this process parsed is not this one's
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come anywhere after `train STAGE`, between or after the flags
    if extra and (
        getattr(args, "overrides", None) is None or any(x.startswith("-") or "=" not in x for x in extra)
    ):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        if getattr(args, "prepare", None):  # old spellings and combined flags, before the command runs
            args.prepare(args)
        warn_deprecated()
        args.func(args)
    except KeyboardInterrupt as e:  # a step that kept its work says what it kept
        print(f"okapi-hf: {e or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("OKAPI_HF_TRACEBACK") == "1":
            raise
        print(f"okapi-hf: error: {error_line(e)}", file=sys.stderr)
        return 1
    return 0


def _disk_full(e: BaseException | None) -> BaseException | None:
    """The ENOSPC in an exception or its causes (pyarrow and sqlite say it only in their text)."""
    seen = 0
    while e is not None and seen < 8:
        if is_disk_full(e) or any(
            s in str(e) for s in ("No space left on device", "database or disk is full")
        ):
            return e
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def error_line(e: BaseException) -> str:
    """One line for any failure: ours say what to change; the file system's name the path and the cause.

    Anything else is a bug in okapi-hf, said as such (``OKAPI_HF_TRACEBACK=1`` shows the traceback).
    """
    if isinstance(e, OkapiError):
        return " ".join(str(e).split("\n")).strip()
    full = _disk_full(e)
    if full is not None:
        where = f" writing {full.filename}" if getattr(full, "filename", None) else ""
        return f"the disk is full{where}; free some space and run the command again (finished work is kept)"
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return (
        f"unexpected {type(e).__name__}: {first} (this is a bug in okapi-hf: please report it with the "
        "command; OKAPI_HF_TRACEBACK=1 shows the traceback)"
    )
