"""lm-eval hooks for the okapi_hellaswag_* tasks: thin wrappers over :mod:`okapi_hf.eval.protocol`."""

from __future__ import annotations

from typing import Any

from okapi_hf.eval import protocol

protocol.install_excepthook()  # a bad data file ends the lm_eval CLI with one message, not a traceback


def load_hellaswag(lang: str | None = None, **_: Any):
    """``custom_dataset``: lm-eval passes the task's ``dataset_kwargs`` (``lang``) and its metadata."""
    if lang is None:
        raise protocol.DataError("okapi_hellaswag tasks need dataset_kwargs: {lang: <code>} in their YAML")
    return protocol.load_benchmark("hellaswag", lang)


def process_hellaswag(dataset):
    """``process_docs``: add the protocol's query, choices and gold columns."""
    return protocol.process_docs("hellaswag", dataset)
