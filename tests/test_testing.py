"""The tiny models every other test builds on: they must load, tokenize, pad, chat and generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from okapi_hf.testing import TINY_ARCHS, make_tiny_model, train_tiny_tokenizer

# Sentences that are not in the training corpus, one per script the corpus covers (plus Latin diacritics).
SCRIPT_SAMPLES = {
    "english": "The students wrote a short story about their summer holiday.",
    "vietnamese": "Những đứa trẻ đang chơi đùa vui vẻ ngoài sân trường.",
    "german": "Die Straßenbahn hält direkt vor dem Rathaus.",
    "russian": "Мы долго гуляли по берегу реки и разговаривали.",
    "chinese": "我们昨天在图书馆学习了很长时间。",
    "arabic": "ذهبنا إلى السوق واشترينا الفواكه والخضار.",
    "hindi": "हम कल शाम को बाज़ार गए और फल खरीदे।",
    "bengali": "আমরা গতকাল বিকেলে নদীর ধারে হাঁটতে গিয়েছিলাম।",
}
CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Dịch sang tiếng Anh: xin chào"},
    {"role": "assistant", "content": "Hello"},
]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One saved model per architecture, shared read-only by the tests below."""
    return {arch: make_tiny_model(arch, tmp_path_factory.mktemp(arch)) for arch in TINY_ARCHS}


@pytest.fixture(scope="module")
def tokenizer():
    return train_tiny_tokenizer()


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_saved_directory_is_a_safetensors_checkpoint(tiny_dirs: dict[str, Path], arch: str) -> None:
    names = {p.name for p in tiny_dirs[arch].iterdir()}
    expected = {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"}
    assert expected | {"tokenizer_config.json"} <= names
    assert not [n for n in names if n.endswith(".bin")]
    config = json.loads((tiny_dirs[arch] / "config.json").read_text())
    assert config["model_type"] == arch
    generation = json.loads((tiny_dirs[arch] / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (
        config["bos_token_id"],
        config["eos_token_id"],
        config["pad_token_id"],
    )


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_reloads_with_auto_classes_and_runs_forward(tiny_dirs: dict[str, Path], arch: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dirs[arch])
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[arch])
    assert model.config.model_type == arch
    assert model.config.vocab_size == len(tok) == 1024
    batch = tok(["Hello there", SCRIPT_SAMPLES["russian"]], padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], len(tok))


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_sequence_classification_pools_the_last_real_token(tiny_dirs: dict[str, Path], arch: str) -> None:
    """The reward model reads the score at the last non-pad token, so padding must not change it."""
    tok = AutoTokenizer.from_pretrained(tiny_dirs[arch])
    reward = AutoModelForSequenceClassification.from_pretrained(tiny_dirs[arch], num_labels=1).eval()
    assert reward.config.pad_token_id == tok.pad_token_id
    short, long = "Hi", SCRIPT_SAMPLES["german"]
    with torch.no_grad():
        padded = reward(**tok([short, long], padding=True, return_tensors="pt")).logits
        alone = reward(**tok([short], return_tensors="pt")).logits
    assert padded.shape == (2, 1)
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("script", SCRIPT_SAMPLES)
def test_tokenizer_round_trips_and_learned_merges(tokenizer, script: str) -> None:
    text = SCRIPT_SAMPLES[script]
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id not in ids
    # Bytes alone would give one token per UTF-8 byte; merges for the script bring it well below that.
    assert len(ids) < 0.75 * len(text.encode("utf-8")), "too few merges learned for this script"


def test_tokenizer_handles_text_outside_the_corpus(tokenizer) -> None:
    text = "日本語のテキスト 🦙 ελληνικά ﷺ\t\n  x"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id not in ids


def test_tokenizer_special_tokens(tokenizer) -> None:
    specials = (tokenizer.unk_token, tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token)
    assert specials == ("<unk>", "<s>", "</s>", "<pad>")
    assert len(set(tokenizer.convert_tokens_to_ids(list(specials)))) == 4
    assert tokenizer.model_max_length == 2048


def test_tokenizer_training_is_deterministic() -> None:
    first, second = train_tiny_tokenizer(), train_tiny_tokenizer()
    assert first.get_vocab() == second.get_vocab()
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()


def test_extra_texts_are_learned() -> None:
    word = "Okapiwortschatz"
    assert len(train_tiny_tokenizer().tokenize(word)) > 1
    assert train_tiny_tokenizer(extra_texts=[word] * 50).tokenize(word) == [word]


def test_too_small_vocab_is_rejected() -> None:
    with pytest.raises(ValueError, match="vocab_size"):
        train_tiny_tokenizer(vocab_size=100)


def test_same_seed_same_weights_and_global_rng_untouched(tmp_path: Path) -> None:
    before = torch.random.get_rng_state()
    a = load_file(make_tiny_model("llama", tmp_path / "a", seed=1) / "model.safetensors")
    b = load_file(make_tiny_model("llama", tmp_path / "b", seed=1) / "model.safetensors")
    c = load_file(make_tiny_model("llama", tmp_path / "c", seed=2) / "model.safetensors")
    assert torch.equal(torch.random.get_rng_state(), before)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["model.embed_tokens.weight"], c["model.embed_tokens.weight"])


@pytest.mark.parametrize(("arch", "side"), [("bloom", "left"), ("llama", "right")])
def test_padding_side_and_pad_id(tiny_dirs: dict[str, Path], arch: str, side: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dirs[arch])
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[arch])
    assert tok.padding_side == side
    assert tok.pad_token_id == model.config.pad_token_id == model.generation_config.pad_token_id
    batch = tok(["Hi", SCRIPT_SAMPLES["chinese"]], padding=True)
    short_ids, short_mask = batch["input_ids"][0], batch["attention_mask"][0]
    pad_at = 0 if side == "left" else -1
    assert short_ids[pad_at] == model.config.pad_token_id
    assert short_mask[pad_at] == 0
    assert tok.decode([i for i, m in zip(short_ids, short_mask, strict=True) if m]) == "Hi"


def test_chat_template_renders_conversation(tokenizer) -> None:
    rendered = tokenizer.apply_chat_template(CHAT, tokenize=False)
    for marker, message in zip(("<|system|>", "<|user|>", "<|assistant|>"), CHAT, strict=True):
        assert f"{marker}\n{message['content']}" in rendered
    assert rendered.endswith("Hello" + tokenizer.eos_token)

    prompt = tokenizer.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>\n")
    assert rendered.startswith(prompt)  # prompt/completion splits rely on this
    assert not tokenizer.apply_chat_template(CHAT[:2], tokenize=False).endswith("<|assistant|>\n")


def test_chat_template_markers_and_assistant_mask(tokenizer) -> None:
    out = tokenizer.apply_chat_template(CHAT, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert tokenizer.convert_tokens_to_ids("<|assistant|>") in ids  # one token, not split into pieces
    assistant_ids = [i for i, m in zip(ids, mask, strict=True) if m]
    assert tokenizer.decode(assistant_ids) == "Hello" + tokenizer.eos_token
    assert "<|user|>" not in tokenizer.decode(ids, skip_special_tokens=True)


def test_chat_template_rejects_unknown_roles(tokenizer) -> None:
    with pytest.raises(Exception, match="Unknown chat role"):
        tokenizer.apply_chat_template([{"role": "narrator", "content": "x"}], tokenize=False)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_generate_on_padded_batch(tiny_dirs: dict[str, Path], arch: str) -> None:
    tok = AutoTokenizer.from_pretrained(tiny_dirs[arch])
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs[arch])
    prompts = [
        tok.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
        for text in ("Hi", SCRIPT_SAMPLES["arabic"])
    ]
    batch = tok(prompts, padding=True, return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    prompt_len = batch["input_ids"].shape[1]
    assert out.shape == (2, prompt_len + 5)
    assert torch.equal(out[:, :prompt_len], batch["input_ids"])


def test_unknown_arch_lists_valid_archs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gpt2") as excinfo:
        make_tiny_model("gpt2", tmp_path)
    assert all(arch in str(excinfo.value) for arch in TINY_ARCHS)
    assert not list(tmp_path.iterdir())
