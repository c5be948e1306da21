import pytest

from okapi_hf.prompts import extract_response, format_example, format_prompt, render_chat, to_messages

WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nDịch sang tiếng Anh.\n\n### Input:\nXin chào\n\n### Response:\n"
)
NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the "
    "request.\n\n### Instruction:\nThủ đô của Pháp là gì?\n\n### Response:\n"
)


def test_okapi_template_exactly():
    assert format_prompt("Dịch sang tiếng Anh.", "Xin chào") == WITH_INPUT
    assert format_prompt("Thủ đô của Pháp là gì?") == NO_INPUT
    assert format_prompt("Thủ đô của Pháp là gì?", "") == NO_INPUT
    assert format_prompt("Thủ đô của Pháp là gì?", None) == NO_INPUT


def test_example_is_prompt_plus_response_and_extracts_back():
    text = format_example("Thủ đô của Pháp là gì?", "", "Paris.")
    assert text == NO_INPUT + "Paris."
    assert extract_response(text) == "Paris."


def test_extract_response_takes_the_first_marker_and_strips():
    assert extract_response("x ### Response:\n  a ### Response: b  \n") == "a ### Response: b"
    assert extract_response("  no marker here\n") == "no marker here"


def test_messages_join_input_after_a_blank_line():
    assert to_messages("Sort.", "3, 1") == [{"role": "user", "content": "Sort.\n\n3, 1"}]
    assert to_messages("Hi", output="Hello")[1] == {"role": "assistant", "content": "Hello"}


class _Tok:
    chat_template = "x"
    name_or_path = "fake"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert tokenize is False
        body = "".join(f"<{m['role']}>{m['content']}" for m in messages)
        return body + ("<assistant>" if add_generation_prompt else "")


def test_render_chat_uses_the_tokenizer_template():
    assert render_chat(_Tok(), "Sort.", "3, 1") == "<user>Sort.\n\n3, 1<assistant>"
    assert render_chat(_Tok(), "Hi", output="Yo") == "<user>Hi<assistant>Yo"


def test_render_chat_without_template_is_a_clear_error():
    tok = _Tok()
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        render_chat(tok, "Hi")


def test_render_chat_with_the_tiny_tokenizer():
    from okapi_hf.testing import train_tiny_tokenizer

    tok = train_tiny_tokenizer()
    prompt = render_chat(tok, "Sắp xếp các số sau.", "3, 1, 2")
    assert "Sắp xếp các số sau.\n\n3, 1, 2" in prompt
    assert prompt.endswith("<|assistant|>\n")
    full = render_chat(tok, "Sắp xếp các số sau.", "3, 1, 2", output="1, 2, 3")
    assert full.startswith(prompt) and full.rstrip().endswith("1, 2, 3</s>")
