"""A multiple-choice scorer for lm-eval: lm-eval's ``hf`` model, with log-likelihoods computed cheaply.

lm-eval's ``hf`` model forwards the whole context once per answer choice and takes a log-softmax
over the vocabulary at every position. A 25-shot Okapi prompt is 1-4k tokens and the choices are a
few tokens each, and Gemma's vocabulary has 262,144 entries (1 MB of float32 logits per position),
so almost all that work and memory is thrown away. :class:`FastMCLM` gives the same numbers with:

* the context forwarded once per document, its key/value cache shared by all the choices;
* the LM head computed only where a continuation token is predicted (``logits_to_keep``).

Everything else (tokenisation, including how a continuation that merges with the context at the
token boundary is split, generation, model loading, ``peft=``) is lm-eval's own, inherited. Two
additions: ``pretrained=`` takes what every okapi-hf model argument takes (a preset such as
``gemma-3-270m``, a ``.gguf`` file, a LoRA adapter folder), and ``add_bos_token`` defaults to False,
as the Okapi authors encoded contexts without special tokens. Registered as ``okapi-hf``: ``okapi-hf eval run`` uses it; under plain ``lm_eval`` after
``import okapi_hf.eval.scorer`` (or with the ``okapi-hf`` plugin hook, see ``tasks/README.md``).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

MODEL_NAME = "okapi-hf"
Request = tuple[tuple[str, str], list[int], list[int]]


@register_model(MODEL_NAME)
class FastMCLM(HFLM):
    """HFLM whose ``_loglikelihood_tokens`` reuses each context's KV cache across its continuations."""

    def __init__(self, pretrained: Any = None, *, add_bos_token: bool | None = False, **kwargs: Any) -> None:
        if isinstance(pretrained, str):  # presets, .gguf files and adapter folders, as everywhere in okapi-hf
            from okapi_hf.eval.harness import resolve_pretrained

            pretrained, peft = resolve_pretrained(pretrained, kwargs.pop("peft", None))
            if peft is not None:
                kwargs["peft"] = peft
        super().__init__(pretrained, add_bos_token=add_bos_token, **kwargs)

    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        if self.backend != "causal":
            return super()._loglikelihood_tokens(requests, disable_tqdm, override_bs)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (_, context, _) in enumerate(requests):
            groups.setdefault(tuple(context), []).append(i)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        fallback_ids: list[int] = []
        bar = tqdm(total=len(requests), desc="Scoring choices", disable=disable_tqdm or self.rank != 0)
        for context, members in groups.items():
            if any(
                not requests[i][2] or len(context) + len(requests[i][2]) > self.max_length + 1
                for i in members
            ):
                # too long (lm-eval cuts from the left) or nothing to score (lm-eval refuses):
                # lm-eval's own path does exactly what it always does
                fallback_ids += members
                continue
            scored = self._score_group(list(context), [requests[i][2] for i in members])
            for i, answer in zip(members, scored, strict=True):
                results[i] = answer
                self.cache_hook.add_partial("loglikelihood", requests[i][0], answer)
            bar.update(len(members))
        bar.close()
        if fallback_ids:
            fallback = super()._loglikelihood_tokens(
                [requests[i] for i in fallback_ids], disable_tqdm, override_bs
            )
            for i, answer in zip(fallback_ids, fallback, strict=True):
                results[i] = answer
        return results  # type: ignore[return-value]

    @torch.no_grad()
    def _score_group(
        self, context: list[int], continuations: Sequence[list[int]]
    ) -> list[tuple[float, bool]]:
        """(sum of log-probs, greedy?) of each continuation after one shared ``context``."""
        device = self.device
        out = self.model(torch.tensor([context], device=device), use_cache=True, logits_to_keep=1)
        context_cache = out.get("cache") if out.get("cache") is not None else out.get("past_key_values")
        # the last context position predicts every continuation's first token
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        longer = [i for i, cont in enumerate(continuations) if len(cont) > 1]
        rest: dict[int, torch.Tensor] = {}
        step = self._choice_batch()
        for start in range(0, len(longer), step):
            batch = longer[start : start + step]
            last = start + step >= len(longer)  # the last batch may extend the cache itself: no copy
            cache = context_cache if last else copy.deepcopy(context_cache)
            rest.update(self._score_rest(cache, [continuations[i] for i in batch], batch))
        answers = []
        for i, cont in enumerate(continuations):
            logprobs = first.unsqueeze(0) if i not in rest else torch.cat([first.unsqueeze(0), rest[i]])
            target = torch.tensor(cont, device=logprobs.device)
            picked = logprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            greedy = bool((logprobs.argmax(-1) == target).all())
            answers.append((float(picked.sum()), greedy))
        return answers

    def _score_rest(self, cache, continuations: list[list[int]], ids: list[int]) -> dict[int, torch.Tensor]:
        """Log-probs after each continuation's first token: one batched forward on the context's cache.

        Continuations are right-padded; a padded position comes after every real token of its row, so
        causal attention never lets a real token see padding and no attention mask is needed.
        """
        width = max(len(cont) for cont in continuations) - 1
        inputs = torch.zeros(len(continuations), width, dtype=torch.long)
        for row, cont in enumerate(continuations):
            inputs[row, : len(cont) - 1] = torch.tensor(cont[:-1])
        cache.batch_repeat_interleave(len(continuations))
        logits = self.model(inputs.to(self.device), **{self._cache_argument(): cache}, use_cache=True).logits
        return {
            i: torch.log_softmax(logits[row, : len(cont) - 1].float(), dim=-1)
            for row, (i, cont) in enumerate(zip(ids, continuations, strict=True))
        }

    def _cache_argument(self) -> str:
        """transformers renamed ``past_key_values`` to ``cache`` during 5.x; take what the model has."""
        return "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"

    def _choice_batch(self) -> int:
        """Continuations forwarded together on one context (``batch_size`` when it is a number)."""
        size = self.batch_size if isinstance(self.batch_size, int) else 0
        return max(size, 8)
