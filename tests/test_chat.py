"""The chat pipeline: Okapi's one-shot API, multi-turn chat, streaming, stop strings, adapters, the terminal."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from okapi_hf.chat import (
    OKAPI_GENERATION,
    OKAPI_STOP_STRINGS,
    ChatError,
    language_system_prompt,
    okapi_conversation,
    pipeline,
    terminal_chat,
    visible_text,
)
from okapi_hf.cli import main as cli_main
from okapi_hf.prompts import extract_response, format_example, format_prompt
from okapi_hf.testing import TINY_ARCHS, make_tiny_model

USER = [{"role": "user", "content": "Xin chào, bạn khỏe không?"}]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("chat")
    return {arch: make_tiny_model(arch, root / arch, seed=1) for arch in TINY_ARCHS}


@pytest.fixture(scope="module")
def pipes(models) -> dict:
    return {arch: pipeline(path, max_new_tokens=24) for arch, path in models.items()}


def _cut(text: str) -> str:
    cuts = [text.find(s) for s in OKAPI_STOP_STRINGS if s in text]
    return (text[: min(cuts)] if cuts else text).strip()


def _count_new_tokens(monkeypatch, pipe) -> list[int]:
    """Record how many tokens each ``generate`` call of the pipeline's model produced."""
    lengths = []
    original = pipe.model.generate

    def spy(**kwargs):
        output = original(**kwargs)
        lengths.append(output.shape[1] - kwargs["input_ids"].shape[1])
        return output

    monkeypatch.setattr(pipe.model, "generate", spy)
    return lengths


# -- Okapi's generate --------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_generate_returns_the_text_after_the_response_marker(models, pipes, arch):
    """Same as Okapi's script: prompt in its template, decode, keep what follows `### Response:`."""
    reply = pipes[arch].generate("Dịch sang tiếng Anh", "Xin chào", seed=5)
    tokenizer = AutoTokenizer.from_pretrained(models[arch])
    model = AutoModelForCausalLM.from_pretrained(models[arch])
    ids = tokenizer(format_prompt("Dịch sang tiếng Anh", "Xin chào"), return_tensors="pt")
    torch.manual_seed(5)
    output = model.generate(
        **ids, do_sample=True, top_p=0.75, top_k=40, max_new_tokens=24, pad_token_id=tokenizer.pad_token_id
    )
    expected = _cut(extract_response(tokenizer.decode(output[0], skip_special_tokens=True)))
    assert reply == expected and reply


def test_okapis_sampling_settings_are_the_defaults(models, monkeypatch):
    pipe = pipeline(models["llama"])
    assert pipe.generation == OKAPI_GENERATION
    seen = {}
    original = pipe.model.generate

    def spy(**kwargs):
        seen.update(kwargs)
        return original(**{**kwargs, "max_new_tokens": 2})

    monkeypatch.setattr(pipe.model, "generate", spy)
    pipe.generate("Kể một câu chuyện")
    config = seen["generation_config"]
    assert (config.do_sample, config.top_p, config.top_k, config.max_new_tokens) == (True, 0.75, 40, 256)
    assert config.stop_strings == list(OKAPI_STOP_STRINGS)


def test_the_same_seed_gives_the_same_reply_and_another_seed_another(pipes):
    pipe = pipes["llama"]
    first = pipe.generate("Kể một câu chuyện", seed=7)
    assert pipe.generate("Kể một câu chuyện", seed=7) == first
    assert pipe.generate("Kể một câu chuyện", seed=8) != first


def test_generation_parameters_apply_to_one_call(pipes, monkeypatch):
    pipe = pipes["llama"]
    lengths = _count_new_tokens(monkeypatch, pipe)
    pipe.chat(USER, seed=0, max_new_tokens=3, temperature=0.5)
    pipe.chat(USER, seed=0)
    assert lengths[0] <= 3 < lengths[1]
    assert pipe.generation["max_new_tokens"] == 24  # the pipeline's own setting is untouched


# -- multi-turn chat and streaming -------------------------------------------------------------------------


@pytest.mark.parametrize("arch", TINY_ARCHS)
@pytest.mark.parametrize("template", ["chat", "okapi"])
def test_streaming_delivers_the_same_text_as_the_plain_call(pipes, arch, template):
    pipe = pipes[arch]
    pipe.template = template
    try:
        messages = [
            {"role": "system", "content": language_system_prompt("vi")},
            *USER,
            {"role": "assistant", "content": "Tôi khỏe."},
            {"role": "user", "content": "Kể một câu chuyện"},
        ]
        whole = pipe.chat(messages, seed=3)
        pieces = list(pipe.chat(messages, seed=3, stream=True))
    finally:
        pipe.template = "auto"
    assert whole and "".join(pieces) == whole
    assert len(pieces) > 1, "the reply arrives in several pieces"


def test_the_chat_template_renders_the_conversation(pipes):
    pipe = pipes["llama"]
    messages = [{"role": "system", "content": "Be brief."}, *USER]
    assert pipe.uses_chat_template
    assert pipe.render(messages) == pipe.tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )


def test_without_a_chat_template_earlier_turns_become_okapi_examples():
    messages = [
        {"role": "system", "content": "Trả lời bằng tiếng Việt."},
        {"role": "user", "content": "Một"},
        {"role": "assistant", "content": "1"},
        {"role": "user", "content": "Hai"},
    ]
    assert okapi_conversation(messages) == (
        format_example("Một", "", "1") + "\n\n" + format_prompt("Trả lời bằng tiếng Việt.\n\nHai")
    )


def test_a_stop_string_ends_the_reply_before_it(pipes):
    pipe = pipes["llama"]
    free = pipe.chat(USER, do_sample=False)
    stop = free[len(free) // 2 : len(free) // 2 + 3]
    assert stop.strip() and free.find(stop) > 0
    stopped = pipe.chat(USER, do_sample=False, stop=[stop])
    assert stopped == free[: free.find(stop)].strip()
    assert "".join(pipe.chat(USER, do_sample=False, stop=[stop], stream=True)) == stopped


def test_visible_text_only_grows_while_streaming():
    """Every partial view is a prefix of the final reply, however the text was split."""
    stops = ("### Instruction:", "</s>")
    texts = [" Hello ### Ins", " Hello ### Instruction: more", "  abc </", "abc </s> tail", "plain text  "]
    for text in texts:
        final = visible_text(text, stops, final=True)
        for end in range(len(text) + 1):
            assert final.startswith(visible_text(text[:end], stops, final=False)), (text, end)
    assert visible_text(" Hello ### Ins", stops, final=False) == "Hello"
    assert visible_text(" Hello ### Instruction: more", stops, final=True) == "Hello"


def test_closing_a_stream_early_stops_generation(pipes, monkeypatch):
    pipe = pipes["llama"]
    lengths = _count_new_tokens(monkeypatch, pipe)
    settings = {"stream": True, "seed": 0, "max_new_tokens": 200, "stop": ["\n\n\n\n"]}
    full = list(pipe.chat(USER, **settings))
    stream = pipe.chat(USER, **settings)
    assert next(stream) == full[0]
    stream.close()  # joins the generation thread, which stops at its next token
    assert len(lengths) == 2 and lengths[1] < lengths[0]


def test_a_long_conversation_drops_its_oldest_turns(pipes, caplog):
    pipe = pipes["llama"]
    limit = pipe.max_input_tokens
    pipe.max_input_tokens = 60
    try:
        turns = []
        for i in range(6):
            turns += [
                {"role": "user", "content": f"câu hỏi số {i}"},
                {"role": "assistant", "content": "trả lời"},
            ]
        with caplog.at_level(logging.WARNING, logger="okapi_hf.chat"):
            prompt = pipe.render([*turns, {"role": "user", "content": "câu cuối"}])
    finally:
        pipe.max_input_tokens = limit
    assert "câu cuối" in prompt and "câu hỏi số 0" not in prompt
    assert len(pipe.tokenizer(prompt, add_special_tokens=False).input_ids) <= 60
    assert "dropped the" in caplog.text


# -- LoRA adapters -----------------------------------------------------------------------------------------


def test_a_lora_adapter_folder_loads_on_its_base_model(models, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = AutoModelForCausalLM.from_pretrained(models["llama"])
    torch.manual_seed(0)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)  # non-zero: visible
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(models["llama"])

    pipe = pipeline(tmp_path / "adapter", max_new_tokens=16)
    merged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(models["llama"]), tmp_path / "adapter"
    ).merge_and_unload()
    ids = pipe.tokenizer(pipe.render(USER), return_tensors="pt", add_special_tokens=False)
    expected = merged.generate(
        **ids, do_sample=False, max_new_tokens=16, pad_token_id=pipe.tokenizer.pad_token_id
    )
    text = pipe.tokenizer.decode(expected[0, ids.input_ids.shape[1] :], skip_special_tokens=True).strip()
    assert pipe.chat(USER, do_sample=False) == text
    assert pipeline(models["llama"], max_new_tokens=16).chat(USER, do_sample=False) != text


# -- bad input ----------------------------------------------------------------------------------------------


def test_a_model_path_that_does_not_exist_is_named(tmp_path):
    with pytest.raises(ChatError, match="does not exist"):
        pipeline(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ChatError, match=r"expected config\.json"):
        pipeline(tmp_path / "empty")


def test_gpu_without_cuda_is_a_clear_error(models):
    if torch.cuda.is_available():  # pragma: no cover - this branch is for GPU machines
        assert pipeline(models["llama"], gpu=True).model.device.type == "cuda"
    else:
        with pytest.raises(ChatError, match="no CUDA device"):
            pipeline(models["llama"], gpu=True)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ([], "no messages"),
        ([{"role": "user", "content": "   "}], "last user message is empty"),
        ([{"role": "bot", "content": "hi"}], "message 0 must be a dict"),
        ([*USER, {"role": "assistant", "content": "hi"}], "must come from the user"),
    ],
)
def test_bad_messages_are_refused(pipes, messages, message):
    with pytest.raises(ChatError, match=message):
        pipes["llama"].chat(messages)


def test_empty_instruction_and_unknown_parameters_are_refused(pipes):
    with pytest.raises(ChatError, match="instruction is empty"):
        pipes["llama"].generate("  ")
    with pytest.raises(ChatError, match="unknown generation parameter"):
        pipes["llama"].chat(USER, temprature=0.5)


def test_a_message_over_the_limit_is_refused(models):
    pipe = pipeline(models["llama"], max_input_tokens=20)
    with pytest.raises(ChatError, match="limit is 20"):
        pipe.chat([{"role": "user", "content": "rất dài " * 30}])
    with pytest.raises(ChatError, match="limit is 20"):
        pipe.generate("rất dài " * 30)


# -- the terminal chat ------------------------------------------------------------------------------------


class _Script:
    """Keyboard input for the terminal loop, then EOF."""

    def __init__(self, *lines: str):
        self.lines = list(lines)

    def __call__(self, prompt: str) -> str:
        if not self.lines:
            raise EOFError
        return self.lines.pop(0)


def test_terminal_chat_keeps_history_and_obeys_commands(pipes, monkeypatch):
    pipe = pipes["llama"]
    sent = []
    original = pipe.chat

    def spy(messages, **kwargs):
        sent.append([dict(m) for m in messages])
        return original(messages, **kwargs)

    monkeypatch.setattr(pipe, "chat", spy)
    written = []
    script = _Script(
        "Một", "/lang vi", "Hai", "/reset", "Ba", "/lang off", "", "/bogus", "Bốn", "/quit", "never"
    )
    replies = terminal_chat(pipe, seed=0, input_fn=script, write=written.append)
    assert replies == 4 and script.lines == ["never"]
    assert [m["role"] for m in sent[0]] == ["user"]
    assert sent[1][0] == {"role": "system", "content": "Always answer in Vietnamese."}
    assert [m["content"] for m in sent[1][1:]] == ["Một", sent[1][2]["content"], "Hai"]
    assert [m["role"] for m in sent[2]] == ["system", "user"] and sent[2][1][
        "content"
    ] == "Ba"  # after /reset
    assert [m["role"] for m in sent[3]] == ["user", "assistant", "user"]  # /lang off keeps the history
    output = "".join(written)
    assert "(conversation forgotten)" in output and "unknown command /bogus" in output
    assert len(written) > 12, "replies are written piece by piece"


def test_terminal_chat_reports_errors_and_goes_on(models):
    pipe = pipeline(models["llama"], max_input_tokens=20, max_new_tokens=4)
    written = []
    replies = terminal_chat(
        pipe, input_fn=_Script("rất dài " * 30, "/lang xx", "ngắn"), write=written.append, stream=False
    )
    output = "".join(written)
    assert replies == 1 and "limit is 20" in output and "unknown language code 'xx'" in output


def test_the_chat_command_runs_a_conversation(models, monkeypatch, capsys):
    monkeypatch.setattr("builtins.input", _Script("Xin chào", "/quit"))
    assert (
        cli_main(["chat", str(models["bloom"]), "--lang", "vi", "--max-new-tokens", "8", "--seed", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "/reset" in out and "bot> " in out
    assert cli_main(["chat", str(models["bloom"]), "--lang", "xx"]) == 1
    assert "unknown language code 'xx'" in capsys.readouterr().err


def test_a_tokenizer_without_a_chat_template_falls_back_to_okapis(models, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(models["bloom"])
    tokenizer.chat_template = None
    pipe = pipeline(models["bloom"], max_new_tokens=4)
    pipe.tokenizer = tokenizer
    assert not pipe.uses_chat_template
    assert pipe.render(USER) == format_prompt(USER[0]["content"])
    pipe.template = "chat"
    with pytest.raises(ChatError, match="has none"):
        pipe.chat(USER)
    with pytest.raises(ChatError, match="template must be"):
        pipeline(models["bloom"], template="alpaca")


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_batched_greedy_replies_equal_one_at_a_time(pipes, arch):
    """Left padding must not change a reply: prompts of very different lengths share a batch."""
    pipe = pipes[arch]
    conversations = [
        [{"role": "user", "content": text}] for text in ("Chào", "Привет, как у тебя дела сегодня?", "你好")
    ]
    batched = pipe.chat_batch(conversations, batch_size=3, do_sample=False)
    assert batched == [pipe.chat(c, do_sample=False) for c in conversations]
    assert pipe.tokenizer.padding_side == "left"  # restored (the pipeline pads left already)


# -- one generation path for every stage ---------------------------------------------------------------


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_creations_local_backend_and_chat_generate_alike(models, pipes, arch):
    """Both go through okapi_hf.generation: the same model, prompt and greedy decoding give one reply."""
    from okapi_hf.create.backends import LocalBackend
    from okapi_hf.create.llm_types import ChatRequest

    backend = LocalBackend(models[arch])
    request = ChatRequest.chat(USER, temperature=0.0, max_tokens=24)
    model, tokenizer = backend.load()
    result = backend._generate(model, tokenizer, request)
    assert result.text.strip() == pipes[arch].chat(USER, do_sample=False, max_new_tokens=24)
    assert result.finish_reason in ("stop", "length") and 0 < result.completion_tokens <= 24


def test_sampling_settings_make_temperature_zero_greedy():
    from okapi_hf.generation import sampling_settings

    assert sampling_settings({"do_sample": True, "temperature": 0, "top_p": 0.9}) == {"do_sample": False}
    assert sampling_settings({"do_sample": False, "top_k": 40, "max_new_tokens": 3}) == {
        "do_sample": False,
        "max_new_tokens": 3,
    }
    sampled = {"do_sample": True, "temperature": 0.7, "top_p": 0.9}
    assert sampling_settings(sampled) == sampled


def test_chat_keeps_its_public_names():
    import okapi_hf.chat as chat
    import okapi_hf.generation as generation

    assert chat.OKAPI_STOP_STRINGS is generation.OKAPI_STOP_STRINGS
    assert chat.visible_text is generation.visible_text
    assert callable(chat.pipeline) and callable(chat.terminal_chat) and callable(chat.check_chat_options)
