"""How text is generated from a loaded model: inputs, sampling settings, generate or stream, stops, the reply.

Loading is :mod:`okapi_hf.models`; this module is what every stage that generates shares, so that
the chat pipeline (and eval's answer step through it) and creation's in-process ``local:`` backend
build inputs, pick greedy or sampling, stop and decode the same way. torch and transformers are
imported where they are used, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from okapi_hf.errors import OkapiError
from okapi_hf.prompts import encode_batch

# A model tuned on Okapi's template that keeps going starts a new section; the answer ends there.
OKAPI_STOP_STRINGS = ("### Instruction:", "### Input:", "### Response:")
# What only sampling reads: with greedy decoding transformers would just warn about them.
SAMPLING_KNOBS = ("top_p", "top_k", "temperature")


class UnknownGenerationParameter(OkapiError, ValueError):
    """A generation setting transformers does not know (a typo such as ``top-p``)."""


def has_chat_template(tokenizer: Any) -> bool:
    """Whether prompts are rendered with the tokenizer's chat template (else Okapi's)."""
    return bool(getattr(tokenizer, "chat_template", None))


def encode_inputs(tokenizer: Any, texts: Sequence[str], *, templated: bool, device: Any, **kw: Any) -> Any:
    """Token ids for ``texts`` on ``device``, by the one tokenization rule of every stage."""
    return encode_batch(tokenizer, list(texts), templated=templated, return_tensors="pt", **kw).to(device)


def sampling_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with temperature 0 meaning greedy (transformers refuses it with sampling on), and
    the sampling knobs dropped when greedy (they would only raise warnings)."""
    settings = dict(settings)
    if settings.get("temperature") == 0:
        settings["do_sample"] = False
    if not settings.get("do_sample", True):
        settings = {k: v for k, v in settings.items() if k not in SAMPLING_KNOBS}
    return settings


def generation_config(
    model: Any, tokenizer: Any, settings: Mapping[str, Any], stops: Sequence[str] = ()
) -> Any:
    """The model's generation config with ``settings`` on top (see :func:`sampling_settings`).

    Stop strings are set on the config; ``generate`` then needs the tokenizer to find them in ids.
    """
    config = copy.deepcopy(model.generation_config)
    unknown = config.update(**sampling_settings(settings))
    if unknown:
        raise UnknownGenerationParameter(f"unknown generation parameter(s): {', '.join(sorted(unknown))}")
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    if stops:
        config.stop_strings = list(stops)
    return config


def stop_when_set(stop: threading.Event) -> Any:
    """A StoppingCriteriaList that ends generation at the next token once ``stop`` is set."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopWhenSet(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopWhenSet()])


def generate_ids(
    model: Any,
    inputs: Mapping[str, Any],
    *,
    seed: int | None = None,
    own_rng: bool = False,
    stop: threading.Event | None = None,
) -> Any:
    """``model.generate(**inputs)`` without autograd, seeded first when ``seed`` is given.

    ``own_rng`` seeds a forked CPU random state, so the caller's stays as it was (one request's
    sample must not depend on what ran before it); ``stop`` ends generation at the next token once set.
    """
    import torch

    kwargs = dict(inputs)
    if stop is not None:
        kwargs["stopping_criteria"] = stop_when_set(stop)
    rng = torch.random.fork_rng(devices=[]) if own_rng else contextlib.nullcontext()
    with torch.inference_mode(), rng:
        if seed is not None:
            torch.manual_seed(seed)
        return model.generate(**kwargs)


def stream_reply(
    model: Any, tokenizer: Any, inputs: Mapping[str, Any], stops: Sequence[str], seed: int | None
) -> Iterator[str]:
    """Run ``generate`` in a thread and yield the new visible text as it is decoded.

    The pieces add up to what :func:`decode_replies` gives for the same seed. Closing the iterator
    early (a Stop button, a dropped connection) stops the generation thread too.
    """
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    errors: list[BaseException] = []
    cancelled = threading.Event()

    def run() -> None:
        try:  # seeded here, when generation starts, not when the iterator was made
            generate_ids(model, {**inputs, "streamer": streamer}, seed=seed, stop=cancelled)
        except BaseException as e:  # re-raised in the caller's thread below
            errors.append(e)
            streamer.end()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    text, shown = "", ""
    try:
        for piece in streamer:
            text += piece
            visible = visible_text(text, stops, final=False)
            if len(visible) > len(shown):
                yield visible[len(shown) :]
                shown = visible
    finally:
        cancelled.set()
        thread.join()
    if errors:
        raise errors[0]
    visible = visible_text(text, stops, final=True)
    if len(visible) > len(shown):
        yield visible[len(shown) :]


def decode_replies(tokenizer: Any, output: Any, n_prompt: int, stops: Sequence[str]) -> list[str]:
    """The visible reply of each row of ``output``: the tokens after the prompt, cut at a stop string."""
    texts = tokenizer.batch_decode(output[:, n_prompt:], skip_special_tokens=True)
    return [visible_text(text, stops, final=True) for text in texts]


def visible_text(text: str, stops: Sequence[str], *, final: bool) -> str:
    """The reply as the user should see it: cut at the first stop string and stripped.

    While streaming (``final=False``) a tail that could still grow into a stop string is held back, so
    the text shown so far is always a prefix of the final reply.
    """
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    if cuts:
        return text[: min(cuts)].strip()
    if not final:
        held = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        text = text[: len(text) - held]
    return text.strip()


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every token id that ends a reply: the generation config's and the tokenizer's."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def trim_at_stop(new_ids: list[int], stop_ids: set[int]) -> tuple[list[int], str]:
    """Generated ids up to and including the first stop id, and the finish reason (``stop``/``length``)."""
    for i, token in enumerate(new_ids):
        if token in stop_ids:
            return new_ids[: i + 1], "stop"
    return new_ids, "length"
