"""A stage's log: progress bars and a short summary on the terminal, the full stream in ``train.log``.

transformers prints every logging step's dict under the progress bar; over a long run they bury the
warnings that matter and repeat what ``trainer_state.json`` keeps anyway. While a stage runs, the
okapi_hf, transformers, trl and peft loggers write INFO and up, and every logging step's dict, to
``<output_dir>/train.log`` (main process only, appended, so a resumed run keeps its history); the
terminal keeps warnings, progress bars and the summary. ``verbose`` puts the whole stream back on it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

LOG_FILE = "train.log"
LIBRARIES = ("okapi_hf", "transformers", "trl", "peft")
STEPS = logging.getLogger("okapi_hf.train.steps")  # the log dicts: to the file only, never propagated
STEPS.propagate = False


@dataclass
class StageLog:
    """The log of the stage running now: where it goes, whether the terminal gets all of it, and since when."""

    path: Path | None  # None on the other processes of a distributed run
    verbose: bool = False
    started: float = field(default_factory=time.perf_counter)


_CURRENT: contextvars.ContextVar[StageLog] = contextvars.ContextVar("okapi_hf_stage_log")


def current_log() -> StageLog | None:
    """The log of the stage running in this context, if any (stages run from Python without one too)."""
    return _CURRENT.get(None)


class _LogFile(logging.FileHandler):
    """Appends to the log file; once a write fails (a full disk) it stops, and training goes on.

    Records wait in memory until the stage has made its folder: a stage refused before it writes
    anything leaves no folder behind.
    """

    def __init__(self, path: Path):
        super().__init__(path, mode="a", encoding="utf-8", delay=True)
        self.failed = False
        self.pending: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        self.pending.append(record)
        if Path(self.baseFilename).parent.is_dir():
            self._write_pending()

    def _write_pending(self) -> None:
        records, self.pending = self.pending, []
        try:
            for record in records:
                super().emit(record)
        except OSError:
            self.failed = True

    def close(self) -> None:
        if self.pending and not self.failed and Path(self.baseFilename).parent.is_dir():
            self._write_pending()
        super().close()

    def handleError(self, record: logging.LogRecord) -> None:
        self.failed = True


@contextlib.contextmanager
def stage_log(out: Path, stage: str, verbose: bool = False) -> Iterator[StageLog]:
    """Send the libraries' logging to ``out/train.log`` (and only warnings to the terminal) until exit."""
    main = os.environ.get("RANK", "0") == "0"
    log = StageLog(Path(out) / LOG_FILE if main else None, verbose)
    token = _CURRENT.set(log)
    with contextlib.ExitStack() as undo:
        undo.callback(_CURRENT.reset, token)
        if log.path is not None:
            _route(log.path, verbose, undo)
            logging.getLogger("okapi_hf.train").info("== okapi-hf train %s (pid %d) ==", stage, os.getpid())
        yield log


def _route(path: Path, verbose: bool, undo: contextlib.ExitStack) -> None:
    """Add the file (and, where nothing else prints, a terminal) handler to each library; undone on exit."""
    file = _LogFile(path)
    file.setLevel(logging.INFO)
    file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    undo.callback(file.close)
    # what Python's last-resort handler printed before: the message alone, warnings and up
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setLevel(logging.INFO if verbose else logging.WARNING)
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        if not logger.hasHandlers():
            _add(logger, terminal, undo)
        if not verbose:  # transformers' own stderr handler: warnings only
            for handler in logger.handlers:
                if type(handler) is logging.StreamHandler and handler is not terminal:
                    undo.callback(handler.setLevel, handler.level)
                    handler.setLevel(max(handler.level, logging.WARNING))
        _add(logger, file, undo)
        if logger.getEffectiveLevel() > logging.INFO:
            undo.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.INFO)
    _add(STEPS, file, undo)
    undo.callback(STEPS.setLevel, STEPS.level)
    STEPS.setLevel(logging.INFO)


def _add(logger: logging.Logger, handler: logging.Handler, undo: contextlib.ExitStack) -> None:
    logger.addHandler(handler)
    undo.callback(logger.removeHandler, handler)


# -- the trainer's side ---------------------------------------------------------------------------------


class _StepsToFile(TrainerCallback):
    """Every logging step's dict, at full precision, into the log file."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            STEPS.info("step %d: %s", state.global_step, {k: v for k, v in logs.items() if k != "total_flos"})


class _QuietProgress(ProgressCallback):
    """transformers' progress bars without the log dicts written under them."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def quiet_progress(trainer: Any, verbose: bool = False) -> None:
    """Log ``trainer``'s steps to the stage's file; keep them off the terminal unless ``verbose``."""
    trainer.add_callback(_StepsToFile())
    if verbose:
        return
    for callback in list(trainer.callback_handler.callbacks):
        if type(callback) is ProgressCallback:
            trainer.remove_callback(callback)
            trainer.add_callback(_QuietProgress(callback.max_str_len))
        elif isinstance(callback, PrinterCallback):  # disable_tqdm: no bars, the dicts printed alone
            trainer.remove_callback(callback)


def summary(
    log: StageLog | None, stage: str, state: Any, metrics: dict[str, float], keys: tuple[str, ...], out: Path
) -> str:
    """A few lines for the end of a stage: steps, time, its key metrics (last and first logged; eval), where."""
    seconds = time.perf_counter() - log.started if log is not None else None
    head = f"okapi-hf train {stage}: {state.global_step} step{'s' if state.global_step != 1 else ''}"
    if seconds is not None:
        head += f" in {_duration(seconds)}"
    parts = []
    for key in keys:
        values = [entry[key] for entry in state.log_history if isinstance(entry.get(key), (int, float))]
        if values:
            parts.append(f"{key} {values[-1]:.4g}" + (f" (first {values[0]:.4g})" if len(values) > 1 else ""))
    evals = [f"{key} {metrics[f'eval_{key}']:.4g}" for key in keys if f"eval_{key}" in metrics]
    if evals:
        parts.append("eval " + ", ".join(evals))
    lines = [head + (": " + "; ".join(parts) if parts else "")]
    where = f"  outputs in {out}"
    if log is not None and log.path is not None:
        where += f"; full log in {log.path}"
    return "\n".join([*lines, where])


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (
        f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}" if minutes else f"{secs}s"
    )
