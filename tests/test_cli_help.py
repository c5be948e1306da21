"""Every flag of every command says what it does and shows its default; --version; `python -m okapi_hf`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from okapi_hf import __version__
from okapi_hf.cli import build_parser, main


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parser and every subcommand's parser below it, recursively."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


PARSERS = {p.prog: p for p in _parsers(build_parser())}


def _rendered(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The action's entry in the parser's --help, on one line."""
    formatter = parser._get_formatter()
    formatter.add_argument(action)
    return " ".join(formatter.format_help().split())


def _shown(action: argparse.Action) -> bool:
    """False for the hidden old spellings kept for one release (they say so when used)."""
    return action.help is not argparse.SUPPRESS


def test_the_tree_is_walked_whole():
    for command in (
        "okapi-hf eval run",
        "okapi-hf data translate",
        "okapi-hf train all",
        "okapi-hf models list",
    ):
        assert command in PARSERS
    assert len(PARSERS) > 25


@pytest.mark.parametrize("prog", list(PARSERS))
def test_every_flag_has_help_and_shows_its_default(prog):
    parser = PARSERS[prog]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not _shown(action):
            assert "_Deprecated" in type(action).__name__, (prog, action.option_strings)
            continue
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"{prog} {name}: no help"
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help and choice.help.strip(), f"{prog} {choice.dest}: no help"
            continue
        default = action.default
        if default is None or default is False or action.nargs == 0:  # flags without a value: on or off
            continue
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        assert f"(default: {shown})" in _rendered(parser, action), (
            f"{prog} {name}: default {default!r} not shown"
        )


def test_choices_are_listed_complete():
    run = _rendered(PARSERS["okapi-hf eval run"], _action(PARSERS["okapi-hf eval run"], "--benchmarks"))
    for bench in ("arc", "hellaswag", "mmlu", "truthfulqa", "arc_val", "mmlu_val", "all"):
        assert bench in run
    assert "(default: bloom-7b1)" in _rendered(
        PARSERS["okapi-hf train sft"], _action(PARSERS["okapi-hf train sft"], "--recipe")
    )


def _action(parser: argparse.ArgumentParser, flag: str) -> argparse.Action:
    return next(a for a in parser._actions if flag in a.option_strings)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"okapi-hf {__version__}"


@pytest.mark.parametrize("module", ["okapi_hf", "okapi_hf.cli"])
def test_python_dash_m_runs_the_cli(module, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: ") and "quickstart" in proc.stdout and "eval" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", module, "languages", "--format", "codes"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0 and "vi" in proc.stdout.split(","), proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran


def test_train_output_dir_is_the_old_spelling_of_out(capsys):
    from okapi_hf.cli.types import warn_deprecated

    args = build_parser().parse_args(["train", "sft", "--output-dir", "somewhere", "max_steps=1"])
    assert args.out == "somewhere" and args.overrides == ["max_steps=1"]
    warn_deprecated()
    err = capsys.readouterr().err
    assert (
        err == "okapi-hf: warning: deprecated spelling, removed in the next release: --output-dir -> --out\n"
    )
    warn_deprecated()  # said once
    assert capsys.readouterr().err == ""
    assert build_parser().parse_args(["train", "rm", "--out", "there"]).out == "there"
