"""The chat Space: what reaches the model (unit level), then the real app over HTTP and in Chromium."""

from __future__ import annotations

import json
import urllib.request
from itertools import pairwise

import gradio as gr
import pytest
import torch

from live import ARTIFACTS, REPO, ChromiumMissing, chromium, run_space
from okapi_hf.chat import ChatPipeline, pipeline
from okapi_hf.data.sample import SAMPLE_LANGS, sample_rows
from okapi_hf.errors import ConfigError
from okapi_hf.languages import languages
from okapi_hf.spaces.chat import (
    ANY_LANGUAGE,
    CONCURRENCY_ENV,
    EXAMPLES_PER_LANGUAGE,
    GPU_ENV,
    MAX_INPUT_CHARS_ENV,
    MODEL_ENV,
    RANDOM_SEED,
    build_demo,
    config_from_env,
    conversation,
    demo_from_env,
    example_prompts,
    generation_settings,
    history_to_messages,
    language_choices,
    make_respond,
    message_problem,
    okapi_sampling,
    trim_history,
)
from okapi_hf.testing import make_tiny_model

APP = REPO / "spaces" / "chat" / "app.py"
SAMPLING = {"temperature": 1.0, "top_p": 0.75, "top_k": 40}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model("llama", tmp_path_factory.mktemp("chat-space") / "llama", seed=1)


@pytest.fixture(scope="module")
def pipe(tiny_model):
    return pipeline(tiny_model)


def markdown_texts(demo: gr.Blocks) -> str:
    return "\n".join(b.value for b in demo.blocks.values() if isinstance(b, gr.Markdown) and b.value)


# --- unit level: no server -----------------------------------------------------------------------------


def test_history_in_both_gradio_shapes_becomes_plain_messages():
    history = [
        {"role": "user", "content": "Hi"},  # what Gradio keeps between API calls
        {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},  # what the browser sends
        {"role": "user", "content": ["two", {"type": "text", "text": "parts"}], "metadata": None},
    ]
    assert history_to_messages(history) == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "two\nparts"},
    ]
    assert history_to_messages(None) == []


def test_history_entries_with_only_a_file_or_an_unknown_role_are_skipped():
    # the history comes from the browser: what is not user/assistant text is left out, not an error
    # (issue 16: a malformed entry must not block the conversation; tests/test_space_limits.py has more)
    file_part = {"type": "file", "file": {"path": "/tmp/cat.png"}}
    history = [{"role": "user", "content": "a"}, {"role": "user", "content": [file_part]}]
    assert history_to_messages(history) == [{"role": "user", "content": "a"}]
    assert history_to_messages([{"role": "tool", "content": "x"}]) == []


def test_message_limits():
    assert message_problem("x" * 2000, 2000) is None
    too_long = message_problem("x" * 2001, 2000)
    assert too_long is not None and "2001 characters" in too_long and "at most 2000" in too_long
    for empty in ("", "  \n ", None):
        assert "empty" in message_problem(empty, 2000)


def test_trim_history_keeps_the_newest_turns_starting_with_a_user_turn():
    history = [
        {"role": "user", "content": "a" * 10},
        {"role": "assistant", "content": "b" * 10},
        {"role": "user", "content": "c" * 10},
        {"role": "assistant", "content": "d" * 10},
    ]
    assert trim_history(history, 40) == history
    assert trim_history(history, 30) == history[2:]  # 30 chars fit b, c, d; b alone would lead
    assert trim_history(history, 5) == []


def test_conversation_puts_the_language_prompt_first():
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "Yo"}]},
    ]
    messages = conversation("Chào", history, "vi", 1000)
    assert messages == [
        {"role": "system", "content": "Always answer in Vietnamese."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo"},
        {"role": "user", "content": "Chào"},
    ]
    assert conversation("Hi", [], ANY_LANGUAGE, 1000) == [{"role": "user", "content": "Hi"}]
    assert conversation("Hi", [], None, 1000) == [{"role": "user", "content": "Hi"}]


def test_language_choices_come_from_the_registry():
    choices = language_choices()
    assert choices[0][1] == ANY_LANGUAGE
    assert [value for _, value in choices[1:]] == [lang.code for lang in languages()]
    assert ("Vietnamese (vi)", "vi") in choices


def test_examples_are_sample_instructions_with_their_language():
    examples = example_prompts()
    assert [code for _, code in examples] == [c for c in SAMPLE_LANGS for _ in range(EXAMPLES_PER_LANGUAGE)]
    for prompt, code in examples:
        instructions = {row["instruction"] for row in sample_rows(code, "sft", EXAMPLES_PER_LANGUAGE)}
        assert any(prompt.startswith(i) for i in instructions), (code, prompt)
        assert message_problem(prompt, 2000) is None


def test_generation_settings_and_slider_defaults():
    assert okapi_sampling().top_p == 0.75 and okapi_sampling().top_k == 40
    assert okapi_sampling().max_new_tokens == 256
    assert generation_settings(0.7, 0.9, 20, 64) == {
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 20,
        "max_new_tokens": 64,
    }
    assert generation_settings(0, 0.9, 20, 64) == {"do_sample": False, "max_new_tokens": 64}


def test_config_from_env():
    assert config_from_env({}).model is None
    config = config_from_env(
        {MODEL_ENV: " org/model ", MAX_INPUT_CHARS_ENV: "500", CONCURRENCY_ENV: "3", GPU_ENV: "0"}
    )
    assert (config.model, config.max_input_chars, config.concurrency, config.gpu) == (
        "org/model",
        500,
        3,
        False,
    )
    assert config_from_env({GPU_ENV: "1"}).gpu is True
    with pytest.raises(ConfigError, match=f"{MAX_INPUT_CHARS_ENV} must be a whole number, got 'lots'"):
        config_from_env({MAX_INPUT_CHARS_ENV: "lots"})
    with pytest.raises(ConfigError, match=f"{CONCURRENCY_ENV} must be at least 1, got 0"):
        config_from_env({CONCURRENCY_ENV: "0"})
    with pytest.raises(ConfigError, match=f"{GPU_ENV} must be 1"):
        config_from_env({GPU_ENV: "cuda"})


def test_setup_problems_give_a_page_not_a_crash(tmp_path):
    text = markdown_texts(build_demo(None))
    assert "no model configured" in text and MODEL_ENV in text
    missing = tmp_path / "no-such-model"
    text = markdown_texts(build_demo(str(missing)))
    assert "could not be loaded" in text and f"model path {missing} does not exist" in text
    text = markdown_texts(demo_from_env({MODEL_ENV: str(missing), CONCURRENCY_ENV: "two"}))
    assert "misconfigured" in text and f"{CONCURRENCY_ENV} must be a whole number, got 'two'" in text


def test_respond_streams_the_pipeline_reply(pipe):
    respond = make_respond(pipe, max_input_chars=100)
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "Yo"}]},
    ]
    updates = list(respond("Xin chào", history, "vi", *SAMPLING.values(), 30, 5))
    assert len(updates) >= 3
    assert all(later.startswith(earlier) and later != earlier for earlier, later in pairwise(updates))
    expected = pipe.chat(
        conversation("Xin chào", history, "vi", 1000), seed=5, do_sample=True, max_new_tokens=30, **SAMPLING
    )
    assert updates[-1] == expected

    torch.manual_seed(8)  # seed -1 means "do not seed": the reply follows torch's global random state
    unseeded = list(respond("Xin chào", history, "vi", *SAMPLING.values(), 30, RANDOM_SEED))[-1]
    assert unseeded == pipe.chat(
        conversation("Xin chào", history, "vi", 1000), seed=8, do_sample=True, max_new_tokens=30, **SAMPLING
    )


def test_respond_refuses_bad_messages(pipe):
    respond = make_respond(pipe, max_input_chars=100)
    with pytest.raises(gr.Error, match="101 characters long; this Space accepts at most 100"):
        next(respond("x" * 101, [], ANY_LANGUAGE, *SAMPLING.values(), 10, 1))
    with pytest.raises(gr.Error, match="empty"):
        next(respond("   ", [], ANY_LANGUAGE, *SAMPLING.values(), 10, 1))
    file_part = {"type": "file", "file": {"path": "/tmp/cat.png"}}  # skipped: the reply comes (issue 16)
    assert next(
        respond("hi", [{"role": "user", "content": [file_part]}], ANY_LANGUAGE, *SAMPLING.values(), 10, 1)
    )


def test_demo_exposes_one_chat_endpoint_with_the_configured_limits(pipe):
    demo = build_demo(pipe, max_input_chars=300, concurrency=2)
    chat = [fn for fn in demo.fns.values() if fn.api_name == "chat"]
    assert len(chat) == 1 and chat[0].concurrency_limit == 2
    # what a visitor can set: the message, the language, sampling and a seed; nothing names a model
    # (the State is the conversation, which Gradio keeps on the server between API calls)
    assert [type(c).__name__ for c in chat[0].inputs if not isinstance(c, gr.State)] == [
        "Textbox",
        "Dropdown",
        "Slider",
        "Slider",
        "Slider",
        "Slider",
        "Number",
    ]
    assert demo._queue.max_size is not None
    assert "Messages up to 300 characters" in markdown_texts(demo)
    with pytest.raises(ConfigError):
        build_demo(pipe, max_input_chars=0)


def test_pipeline_errors_reach_the_visitor_as_gradio_errors(pipe):
    short = ChatPipeline(pipe.model, pipe.tokenizer, dict(pipe.generation), max_input_tokens=8)
    respond = make_respond(short, max_input_chars=1000)
    with pytest.raises(gr.Error, match="the limit is 8"):
        next(respond("a fairly long message of more than eight tokens", [], "any", *SAMPLING.values(), 5, 1))


# --- live: the app as a Space runs it ------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_space(tiny_model):
    with run_space(APP, {MODEL_ENV: str(tiny_model)}) as url:
        yield url


@pytest.mark.slow
def test_client_gets_a_streamed_reply_equal_to_the_pipeline(chat_space, pipe):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(chat_space, verbose=False)
    settings = {**SAMPLING, "max_new_tokens": 40}
    expected_history: list[dict[str, str]] = [{"role": "system", "content": "Always answer in Vietnamese."}]
    for seed, message in ((11, "Xin chào"), (12, "Tiếp tục đi")):  # the second turn carries the first
        job = client.submit(message, "vi", *settings.values(), seed, api_name="/chat")
        updates = [update for update in job]
        assert len(set(updates)) >= 3, updates
        assert all(later.startswith(earlier) for earlier, later in pairwise(updates))
        expected_history.append({"role": "user", "content": message})
        expected = pipe.chat(expected_history, seed=seed, do_sample=True, **settings)
        assert updates[-1] == expected
        expected_history.append({"role": "assistant", "content": expected})

    with pytest.raises(AppError, match="2001 characters long; this Space accepts at most 2000"):
        client.predict("x" * 2001, "any", *settings.values(), 1, api_name="/chat")
    with pytest.raises(AppError, match="empty"):
        client.predict(" ", "any", *settings.values(), 1, api_name="/chat")
    with pytest.raises(AppError, match="greater than maximum value 1024"):  # Gradio checks slider bounds
        client.predict("hi", "any", 1.0, 0.75, 40, 100_000, 1, api_name="/chat")


# Records every text the n-th bot message shows (window.botTexts[n]) as the browser renders it.
WATCH_BOTS = """() => {
  window.botTexts = {};
  new MutationObserver(() => {
    document.querySelectorAll('[data-testid="bot"]').forEach((bot, i) => {
      const texts = (window.botTexts[i + 1] ||= []);
      const text = bot.textContent.trim();
      if (text && text !== texts[texts.length - 1]) texts.push(text);
    });
  }).observe(document.body, {childList: true, subtree: true, characterData: true});
}"""
REPLY_DONE = """(n) => (window.botTexts[n] || []).length > 0
  && !document.querySelector('[data-testid="stop-button"]')"""


@pytest.mark.slow
def test_browser_sees_the_reply_stream(chat_space):
    from playwright.sync_api import expect

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(chat_space)
        box = page.locator("#chat-input textarea")
        box.wait_for()
        box.fill("x" * 2001)
        box.press("Enter")
        page.get_by_text("this Space accepts at most 2000 characters").wait_for(timeout=10_000)
        assert page.locator('[data-testid="user"]').count() == 0  # refused before it entered the chat

        prompt, _ = example_prompts()[EXAMPLES_PER_LANGUAGE]  # the first Russian example
        page.get_by_text(prompt, exact=True).click()  # fills the textbox and sets the language
        expect(box).to_have_value(prompt)
        expect(page.locator("#chat-language input")).to_have_value("Russian (ru)")

        page.evaluate(WATCH_BOTS)
        box.press("Enter")
        page.wait_for_function(REPLY_DONE, arg=1, timeout=30_000)
        texts = page.evaluate("window.botTexts[1]")
        assert len(texts) >= 3, texts  # several renders of one growing reply, not one final answer
        assert len(texts[-1]) > len(texts[0]) > 0
        assert page.locator('[data-testid="user"]').last.text_content().strip() == prompt

        # a second turn: now the history comes back from the browser, in Gradio's list-of-parts form
        box.fill("Xin chào, bạn khỏe không?")
        box.press("Enter")
        page.wait_for_function(REPLY_DONE, arg=2, timeout=30_000)
        assert len(page.evaluate("window.botTexts[2]")) >= 3
        assert page.locator('[data-testid="bot"]').count() == 2
        assert page.locator('[data-testid="toast-body"]').count() == 0  # no error shown
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat.png"))


@pytest.mark.slow
def test_space_without_a_model_shows_what_to_set():
    with run_space(APP, {MODEL_ENV: ""}) as url:
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            config = json.load(response)
        texts = [c["props"].get("value") for c in config["components"] if c.get("type") == "markdown"]
        assert any("no model configured" in (t or "") for t in texts)
        with chromium() as browser:
            page = browser.new_page()
            page.goto(url)
            page.locator("#chat-setup-message").get_by_text(MODEL_ENV).first.wait_for(timeout=15_000)
            assert "has no model configured" in page.locator("#chat-setup-message").inner_text()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "chat-unconfigured.png"))


def test_a_missing_chromium_fails_and_names_the_fix(monkeypatch, tmp_path):
    """The browser tests fail (never skip) without Chromium, saying what to install; nothing is launched."""
    missing = tmp_path / "no-such-chromium"
    monkeypatch.setenv("OKAPI_HF_CHROMIUM", str(missing))
    with pytest.raises(ChromiumMissing) as failed, chromium():
        pass
    message = str(failed.value)
    assert str(missing) in message
    assert "apt-get install chromium" in message and "OKAPI_HF_CHROMIUM" in message
