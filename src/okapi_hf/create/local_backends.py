"""In-process backends: a causal LM (``local:``) or an NLLB/M2M100 translation model (``seq2seq:``).

Models load lazily, generate one request at a time on a daemon thread (so Ctrl-C ends a generation at
its next token instead of waiting for it), and sample reproducibly from each request's seed and
sample number. How text is generated is :mod:`okapi_hf.generation`, shared with chat and eval.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from okapi_hf.create.llm_types import ChatRequest, ChatResult
from okapi_hf.errors import ConfigError, DataError
from okapi_hf.generation import (
    encode_inputs,
    eos_ids,
    generate_ids,
    has_chat_template,
    sampling_settings,
    trim_at_stop,
)


def _seed_for(request: ChatRequest) -> int:
    """A torch seed from (seed, sample): K samples of one prompt differ, and each is reproducible."""
    digest = hashlib.sha256(json.dumps([request.seed, request.sample]).encode()).hexdigest()
    return int(digest[:8], 16)


def _model_id(kind: str, model_path: str | Path) -> str:
    path = Path(model_path)
    return f"{kind}:{path.resolve() if path.exists() else model_path}"


# Seconds a generation told to stop (Ctrl-C) gets to end at its next token before the client moves on.
STOP_GRACE = 1.0


class _InProcessBackend:
    """Shared by local backends: lazy loading, one generation at a time, off the event loop.

    Each call runs on its own daemon thread with a stop event that a StoppingCriteria checks at every
    token: when the awaiting task is cancelled (Ctrl-C), generation ends at its next token instead of
    running to ``max_tokens``, and ``asyncio.run`` has no executor thread to wait for.
    """

    timeout_applies = False  # bounded by max_tokens; a retry after a timeout would redo the same work
    kind = "local"

    def __init__(self, model_path: str | Path, device: str = "cpu") -> None:
        self.model_path = str(model_path)
        self.device = device
        self.id = _model_id(self.kind, model_path)
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None
        self._stopping: set[threading.Thread] = set()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_path!r}, device={self.device!r})"

    def load(self) -> tuple[Any, Any]:
        """(model, tokenizer), loaded on first use."""
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from okapi_hf.models import (  # presets, .gguf files, adapters too
                ModelSourceError,
                load_model,
                load_tokenizer,
            )

            try:
                tokenizer = load_tokenizer(self.model_path)
                model = load_model(self.model_path, self._model_class())
            except (OSError, ModelSourceError) as e:
                raise ConfigError(f"cannot load a model from {self.model_path!r}: {e}") from e
            model.to(self.device).eval()
            self._loaded = (model, tokenizer)
        return self._loaded

    def _model_class(self) -> Any:
        raise NotImplementedError

    async def complete(self, request: ChatRequest) -> ChatResult:
        stop = threading.Event()
        answer, thread = _on_daemon_thread(self._complete_locked, request, stop)
        try:
            return await answer
        except asyncio.CancelledError:
            stop.set()  # the thread ends at its next token; nobody reads what it made
            self._stopping.add(thread)
            raise

    def _complete_locked(self, request: ChatRequest, stop: threading.Event) -> ChatResult | None:
        with self._lock:
            if stop.is_set():  # cancelled while waiting for the lock or the model
                return None
            model, tokenizer = self._load_locked()
            if stop.is_set():
                return None
            return self._generate(model, tokenizer, request, stop)

    async def aclose(self) -> None:
        """Wait up to STOP_GRACE seconds for the threads told to stop (a generation ends at its next
        token): one still inside torch while the interpreter exits can crash it. A thread loading a
        model cannot be stopped and is left behind after that; the data steps load before they start."""
        deadline = time.monotonic() + STOP_GRACE
        while True:
            self._stopping = {thread for thread in self._stopping if thread.is_alive()}
            if not self._stopping or time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.01)

    def _generate(
        self, model: Any, tokenizer: Any, request: ChatRequest, stop: threading.Event | None = None
    ) -> ChatResult:
        raise NotImplementedError

    @staticmethod
    def _run_generate(
        model: Any, inputs: dict[str, Any], request: ChatRequest, stop: threading.Event | None, **kw: Any
    ) -> Any:
        """Greedy at temperature 0, else sampling (``top_p`` when set), seeded from the request alone."""
        sampling: dict[str, Any] = {"do_sample": True, "temperature": request.temperature}
        if request.top_p is not None:
            sampling["top_p"] = request.top_p
        settings = {**inputs, "max_new_tokens": request.max_tokens, **sampling_settings(sampling), **kw}
        return generate_ids(model, settings, seed=_seed_for(request), own_rng=True, stop=stop)


def _on_daemon_thread(fn: Callable[..., Any], *args: Any) -> tuple[asyncio.Future[Any], threading.Thread]:
    """Run ``fn(*args)`` on a new daemon thread; its result arrives in the returned future.

    Not ``asyncio.to_thread``: ``asyncio.run`` joins the default executor's threads before it returns,
    so Ctrl-C would wait for a model still loading. A result that arrives after the future was
    cancelled, or after its loop closed, is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def deliver(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def run() -> None:
        try:
            outcome: tuple[Callable[[Any], None], Any] = (future.set_result, fn(*args))
        except BaseException as e:  # handed to the awaiting task, as asyncio.to_thread does
            outcome = (future.set_exception, e)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for this answer
            loop.call_soon_threadsafe(deliver, *outcome)

    thread = threading.Thread(target=run, name=f"okapi-generate-{id(future):x}", daemon=True)
    thread.start()
    return future, thread


class LocalBackend(_InProcessBackend):
    """A causal LM in this process: the tokenizer's chat template, or Okapi's prompt if it has none.

    Okapi's template holds one instruction, so without a chat template only the last user message is
    used. Greedy at temperature 0, else sampling (with ``top_p`` when the request sets it) seeded from
    the request's ``seed`` and ``sample``.
    """

    kind = "local"

    def _model_class(self) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def prompt(self, request: ChatRequest) -> str:
        """The text the model continues."""
        _, tokenizer = self.load()
        return self._prompt(tokenizer, request)

    @staticmethod
    def _prompt(tokenizer: Any, request: ChatRequest) -> str:
        if has_chat_template(tokenizer):
            return tokenizer.apply_chat_template(
                [dict(m) for m in request.messages], tokenize=False, add_generation_prompt=True
            )
        from okapi_hf.prompts import format_prompt

        return format_prompt(request.last_user_message())

    def _generate(
        self, model: Any, tokenizer: Any, request: ChatRequest, stop: threading.Event | None = None
    ) -> ChatResult:
        text = self._prompt(tokenizer, request)
        inputs = encode_inputs(tokenizer, [text], templated=has_chat_template(tokenizer), device=model.device)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        output = self._run_generate(model, dict(inputs), request, stop, pad_token_id=pad)
        prompt_len = inputs["input_ids"].shape[1]
        new_ids, finish = trim_at_stop(output[0, prompt_len:].tolist(), eos_ids(model, tokenizer))
        reply = tokenizer.decode(new_ids, skip_special_tokens=True)
        return ChatResult(reply, prompt_len, len(new_ids), finish_reason=finish)


# NLLB-200's codes (ISO 639-3 plus script) for the registry's languages. Arabic is Modern Standard
# Arabic (arb), Chinese simplified script, Nepali npi: the variants Okapi's data is written in.
NLLB_CODES: dict[str, str] = {
    "ru": "rus_Cyrl", "de": "deu_Latn", "zh": "zho_Hans", "fr": "fra_Latn", "es": "spa_Latn",
    "it": "ita_Latn", "nl": "nld_Latn", "vi": "vie_Latn", "id": "ind_Latn", "ar": "arb_Arab",
    "hu": "hun_Latn", "ro": "ron_Latn", "da": "dan_Latn", "sk": "slk_Latn", "uk": "ukr_Cyrl",
    "ca": "cat_Latn", "sr": "srp_Cyrl", "hr": "hrv_Latn", "hi": "hin_Deva", "bn": "ben_Beng",
    "ta": "tam_Taml", "ne": "npi_Deva", "ml": "mal_Mlym", "mr": "mar_Deva", "te": "tel_Telu",
    "kn": "kan_Knda", "en": "eng_Latn", "eu": "eus_Latn", "gu": "guj_Gujr", "hy": "hye_Armn",
    "pt": "por_Latn", "sv": "swe_Latn", "ja": "jpn_Jpan", "fa": "pes_Arab",
}  # fmt: skip


def nllb_code(lang: str) -> str:
    """``vi`` -> ``vie_Latn`` (registry codes and aliases accepted)."""
    from okapi_hf.languages import get_language

    code = get_language(lang).code
    if code not in NLLB_CODES:
        raise ConfigError(f"no NLLB code known for language {code!r}; pass lang_code= to Seq2SeqBackend")
    return NLLB_CODES[code]


def m2m100_code(lang: str) -> str:
    """``vi`` -> ``__vi__``, M2M100's token for a language."""
    from okapi_hf.languages import get_language

    return f"__{get_language(lang).code}__"


LANG_CODE_STYLES: dict[str, Callable[[str], str]] = {"nllb": nllb_code, "m2m100": m2m100_code}


class Seq2SeqBackend(_InProcessBackend):
    """Machine translation with an NLLB or M2M100 model (``AutoModelForSeq2SeqLM``) in this process.

    Translates ``meta["text"]`` (or the last user message) from ``meta["src_lang"]`` to
    ``meta["tgt_lang"]``, both registry codes. ``lang_code`` maps a registry code to the model's
    language token: a function, ``"nllb"`` (``vie_Latn``), ``"m2m100"`` (``__vi__``), or None to pick
    whichever of the two the tokenizer knows. The target token is forced as the first generated token
    (``forced_bos_token_id``), which is how these models are told the output language.
    """

    kind = "seq2seq"

    def __init__(
        self,
        model_path: str | Path,
        lang_code: Callable[[str], str] | str | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__(model_path, device)
        if isinstance(lang_code, str):
            if lang_code not in LANG_CODE_STYLES:
                raise ConfigError(
                    f"lang_code {lang_code!r} unknown; expected one of {', '.join(LANG_CODE_STYLES)} or a function"
                )
            lang_code = LANG_CODE_STYLES[lang_code]
        self.lang_code = lang_code
        self._vocab: set[str] | None = None

    def _model_class(self) -> Any:
        from transformers import AutoModelForSeq2SeqLM

        return AutoModelForSeq2SeqLM

    def model_code(self, lang: str) -> str:
        """The model's language token for registry code ``lang``; ConfigError if the model lacks it."""
        _, tokenizer = self.load()
        return self._model_code(tokenizer, lang)

    def _model_code(self, tokenizer: Any, lang: str) -> str:
        if self._vocab is None:
            self._vocab = set(tokenizer.get_vocab())
        styles = [self.lang_code] if self.lang_code is not None else list(LANG_CODE_STYLES.values())
        tried = []
        for style in styles:
            code = style(lang)
            if code in self._vocab:
                return code
            tried.append(code)
        raise ConfigError(
            f"model {self.model_path!r} has no language token for {lang!r} (tried {', '.join(tried)}); "
            "pass Seq2SeqBackend(lang_code=...) mapping registry codes to this model's tokens"
        )

    def _generate(
        self, model: Any, tokenizer: Any, request: ChatRequest, stop: threading.Event | None = None
    ) -> ChatResult:
        import torch

        meta = request.meta_dict
        for name in ("src_lang", "tgt_lang"):
            if not meta.get(name):
                raise DataError(
                    f"Seq2SeqBackend needs meta[{name!r}] (a registry language code) in each request"
                )
        text = meta.get("text", None)
        if text is None:
            text = request.last_user_message()
        src, tgt = (
            self._model_code(tokenizer, meta["src_lang"]),
            self._model_code(tokenizer, meta["tgt_lang"]),
        )
        if hasattr(tokenizer, "src_lang"):  # NLLB/M2M100 tokenizers add the source token themselves
            tokenizer.src_lang = src
            inputs = dict(tokenizer(text, return_tensors="pt"))
        else:  # any other tokenizer: NLLB's layout, [src] tokens </s>
            ids = [
                tokenizer.convert_tokens_to_ids(src),
                *tokenizer(text, add_special_tokens=False)["input_ids"],
            ]
            ids.append(tokenizer.eos_token_id)
            inputs = {
                "input_ids": torch.tensor([ids]),
                "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
            }
        inputs = {k: v.to(model.device) for k, v in inputs.items()}
        forced = tokenizer.convert_tokens_to_ids(tgt)
        output = self._run_generate(model, inputs, request, stop, forced_bos_token_id=forced)
        # output[0] = decoder start, then the forced language token, then the translation
        new_ids, finish = trim_at_stop(output[0, 1:].tolist(), eos_ids(model, tokenizer))
        reply = tokenizer.decode(new_ids, skip_special_tokens=True)
        return ChatResult(reply, inputs["input_ids"].shape[1], len(new_ids), finish_reason=finish)
