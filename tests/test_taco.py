"""TaCo: record and message format, reading a model's answer, the LLM-driven builder, the curriculum."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import yaml
from datasets import Dataset
from transformers import AutoModelForCausalLM

from okapi_hf.create.backends import FunctionBackend
from okapi_hf.create.llm import ChatRequest, ChatResult, LLMClient
from okapi_hf.create.prompts import render
from okapi_hf.create.runner import RowRejected, run_rows
from okapi_hf.create.taco import (
    extract_answer,
    make_taco,
    response_label,
    split_taco_output,
    taco_language,
    taco_messages,
    taco_output,
    taco_record,
)
from okapi_hf.data.build import build_dataset
from okapi_hf.data.load import load_dataset
from okapi_hf.data.sample import write_sample_raw
from okapi_hf.errors import ConfigError, DataError, OkapiError, UnknownLanguageError
from okapi_hf.models import load_model
from okapi_hf.prompts import extract_response, format_prompt
from okapi_hf.testing import CPU_TRAINING_ARGS, make_tiny_model
from okapi_hf.train import run_sft
from okapi_hf.train.recipes import parse_stage_args
from okapi_hf.train.run_sft import main
from okapi_hf.train.sft import CurriculumSampler, OkapiSFTConfig, OkapiSFTTrainer

CAPITAL_NE = "नेपालको राजधानी कुन हो?"
CAPITAL_ANSWER_NE = "नेपालको राजधानी काठमाडौं हो। यो देशको सबैभन्दा ठूलो सहर पनि हो।"
SUM_NE = "दिइएका सङ्ख्याहरू जोड्नुहोस्।"
SUM_INPUT_NE = "2 र 3"
SUM_ANSWER_NE = "2 र 3 को योगफल 5 हुन्छ।"

# What the fake translator and answerer know: protected text (numbers as ⟦n⟧) -> reply.
TO_ENGLISH = {
    CAPITAL_NE: "What is the capital of Nepal?",
    CAPITAL_ANSWER_NE: "The capital of Nepal is Kathmandu. It is also the largest city of the country.",
    SUM_NE: "Add the given numbers.",
    "⟦1⟧ र ⟦2⟧": "⟦1⟧ and ⟦2⟧",
    "⟦1⟧ र ⟦2⟧ को योगफल ⟦3⟧ हुन्छ।": "The sum of ⟦1⟧ and ⟦2⟧ is ⟦3⟧.",
    "हिमालयको बारेमा एउटा वाक्य लेख्नुहोस्।": "Write one sentence about the Himalayas.",
    "एउटा रङको नाम लेख्नुहोस्।": "Write the name of one colour.",
    "एउटा फलको नाम लेख्नुहोस्।": "Write the name of one fruit.",
    "एउटा जनावरको नाम लेख्नुहोस्।": "Write the name of one animal.",
    "एउटा सहरको नाम लेख्नुहोस्।": "Write the name of one city.",
    # "translated" without leaving Devanagari
    "एउटा खोलाको नाम लेख्नुहोस्।": "एउटा खोलाको नाम लेख्नुहोस्। नेपालमा धेरै ठूला खोलाहरू छन्।",
}
ANSWERS = {  # English request -> English answer
    "What is the capital of Nepal?": "Kathmandu is the capital of Nepal, and its largest city.",
    "Write one sentence about the Himalayas.": "The Himalayas hold the highest mountains on Earth.",
    "Write the name of one colour.": "",  # an empty answer
    "Write the name of one fruit.": "Mango is a sweet fruit that grows in warm places.",
    "Write the name of one animal.": "Tiger.\n\nResponse in Nepali: बाघ",  # the model wrote a label itself
    "Write the name of one city.": "Pokhara is a beautiful lake city in western Nepal.",
}
TO_NEPALI = {
    "Kathmandu is the capital of Nepal, and its largest city.": "काठमाडौं नेपालको राजधानी र सबैभन्दा ठूलो सहर हो।",
    "The Himalayas hold the highest mountains on Earth.": "हिमालयमा पृथ्वीका सबैभन्दा अग्ला हिमालहरू छन्।",
    "Mango is a sweet fruit that grows in warm places.": "Mango is a sweet fruit that grows in warm places.",
}


def fake_llm(request: ChatRequest) -> str | ChatResult:
    """Translations (requests with MT ``meta``) and English answers, from the tables above."""
    meta = request.meta_dict
    if meta:
        table = TO_ENGLISH if meta["tgt_lang"] == "en" else TO_NEPALI
        return table[meta["text"]]
    question = request.last_user_message()
    if question == "Write the name of one city.":
        return ChatResult("Pokhara is a beautiful lake city in", finish_reason="length")
    return ANSWERS[question]


class Recorder:
    """A FunctionBackend over ``fake_llm`` that keeps every request it answers, in order."""

    def __init__(self):
        self.requests: list[ChatRequest] = []
        self.client = LLMClient(FunctionBackend(self._reply))

    def _reply(self, request: ChatRequest) -> str | ChatResult:
        self.requests.append(request)
        return fake_llm(request)


def translation_request(text: str, source: str, target: str, src: str, tgt: str) -> ChatRequest:
    """The request step 2's prompts make for one field (``text`` already protected)."""
    system = render("translate_system", source=source, target=target)
    return ChatRequest.chat(
        [{"role": "system", "content": system}, {"role": "user", "content": text}],
        temperature=0.0,
        meta={"text": text, "src_lang": src, "tgt_lang": tgt},
    )


def build(row, recorder, **kw):
    return asyncio.run(taco_record(row, recorder.client, lang="ne", **kw))


# -- records and messages --------------------------------------------------------------------------------


def test_the_output_has_three_exactly_labelled_parts():
    output = taco_output(" What is the capital of Nepal? ", "Kathmandu.\n", CAPITAL_ANSWER_NE, "ne")
    assert output == (
        "Instruction in English: What is the capital of Nepal?\n\n"
        "Response in English: Kathmandu.\n\n"
        f"Response in Nepali: {CAPITAL_ANSWER_NE}"
    )
    assert split_taco_output(output, "ne") == (
        "What is the capital of Nepal?",
        "Kathmandu.",
        CAPITAL_ANSWER_NE,
    )
    assert response_label("vi") == response_label("Vietnamese") == "Response in Vietnamese:"
    with pytest.raises(DataError, match="empty: english_response"):
        taco_output("Q", "  ", "A", "ne")


def test_messages_are_system_user_assistant():
    record = {
        "id": "ne-sft-3",
        "lang": "ne",
        "instruction": SUM_NE,
        "input": SUM_INPUT_NE,
        "output": taco_output("Add the given numbers.\n\n2 and 3", "The sum is 5.", SUM_ANSWER_NE, "ne"),
    }
    messages = taco_messages(record)
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    system = messages[0]["content"]
    assert system == render("taco_system", language="Nepali")
    for label in ("Instruction in English:", "Response in English:", "Response in Nepali:"):
        assert label in system
    assert messages[1] == {"role": "user", "content": f"{SUM_NE}\n\n{SUM_INPUT_NE}"}
    assert messages[2] == {"role": "assistant", "content": record["output"]}
    assert taco_messages(record, system=False) == messages[1:]


GOOD = taco_output("Q in English", "A in English", CAPITAL_ANSWER_NE, "ne")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (GOOD.replace("Response in English: A in English\n\n", ""), "found labels"),  # a part missing
        (GOOD.replace("Response in Nepali:", "Response in Nepal:"), "found labels"),  # misspelt language
        (GOOD.replace("Response in Nepali:", "Response in Hindi:"), "found labels"),  # another language
        (GOOD.replace("Response in English:", "response in english:"), "found labels"),  # not exact
        (GOOD + "\n\nResponse in Nepali: फेरि", "found labels"),  # repeated label
        (GOOD.replace("\n\nResponse in English:", " Response in English:"), "blank line"),
        (GOOD.replace("Q in English", " "), "empty part"),
    ],
)
def test_messages_refuse_outputs_without_clean_labels(output, message):
    record = {"id": "ne-sft-9", "lang": "ne", "instruction": CAPITAL_NE, "input": "", "output": output}
    with pytest.raises(DataError, match=message) as error:
        taco_messages(record)
    assert "TaCo row ne-sft-9, field output" in str(error.value)


def test_languages_by_code_alias_or_name_and_bad_ones():
    assert taco_language("Nepali").code == taco_language("NE").code == "ne"
    assert taco_language("jp").code == "ja"
    with pytest.raises(UnknownLanguageError, match="unknown language code 'Klingon'"):
        taco_language("Klingon")
    with pytest.raises(ConfigError, match="cannot be English"):
        taco_output("Q", "A", "A", "en")
    record = {"id": "x-1", "instruction": "Q", "output": GOOD}
    with pytest.raises(DataError, match="x-1: no `lang` field"):
        taco_messages(record)


# -- reading a model's answer ----------------------------------------------------------------------------

PREVIOUS = (
    "Instruction in English: What is the capital of Nepal?\n\n"
    "Response in English: Kathmandu.\n\n"
    f"Response in Nepali: {CAPITAL_ANSWER_NE}"
)


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        (PREVIOUS, "ne", CAPITAL_ANSWER_NE),
        (PREVIOUS, "Nepali", CAPITAL_ANSWER_NE),  # the language by name
        ("### Response:\n" + PREVIOUS, "ne", CAPITAL_ANSWER_NE),  # a header echoed first ends nothing
        # markdown, case and spacing
        (
            "**Instruction in English:** Q\n**Response in English:** A\n**Response in Vietnamese:** Đáp án",
            "vi",
            "Đáp án",
        ),
        ("### Response in Vietnamese:\nĐáp án\n", "vi", "Đáp án"),
        ("__Response in Vietnamese__: **Đáp án** đúng", "vi", "**Đáp án** đúng"),
        ("RESPONSE   IN  vietnamese :   Đáp án  ", "vi", "Đáp án"),
        ("Response in vi: Đáp án", "vi", "Đáp án"),  # the language by code
        # the answer ends at the next label, even one of a language the registry lacks
        ("Response in Nepali: उत्तर\nResponse in Sanskrit: उत्तरम्", "ne", "उत्तर"),
        ("Response in Nepali: उत्तर\n\nResponse in English: answer", "ne", "उत्तर"),
        ("Response in Nepali: कोड यस्तो छ, response in JSON: {}", "ne", "कोड यस्तो छ, response in JSON: {}"),
        ("Response in Nepali: उत्तर **Response in English:** answer", "ne", "उत्तर"),
        # a chain that repeats its last part: the last label counts
        ("Response in Nepali: पहिलो\nResponse in Nepali: अन्तिम", "ne", "अन्तिम"),
        # no label, another language's label, an empty answer: None, never some other text
        ("काठमाडौं", "ne", None),
        ("Instruction in English: Q\n\nResponse in English: A", "ne", None),
        ("Response in Hindi: काठमाडौं", "ne", None),
        ("Response in Nepali:   \n\nResponse in English: A", "ne", None),
        # the chain ends at a new turn: what follows belongs to another question
        (f"Response in Nepali: उत्तर\n### Instruction:\n{CAPITAL_NE}\nResponse in Nepali: अर्को", "ne", "उत्तर"),
        ("Response in Nepali: उत्तर<|im_end|>\n<|im_start|>user\nResponse in Nepali: अर्को", "ne", "उत्तर"),
        ("Response in Nepali: उत्तर</s>Response in Nepali: अर्को", "ne", "उत्तर"),
        (f"उत्तर\n### Instruction:\n{CAPITAL_NE}\n### Response:\n{PREVIOUS}", "ne", None),
    ],
)
def test_extract_answer(text, lang, expected):
    assert extract_answer(text, lang) == expected


def test_the_prompt_is_removed_first():
    generated = format_prompt(CAPITAL_NE) + PREVIOUS
    assert extract_answer(generated, "ne") is None  # the prompt's own headers end the output early
    assert extract_answer(extract_response(generated), "ne") == CAPITAL_ANSWER_NE


def test_a_degenerate_chain_never_borrows_the_previous_answer():
    """TaCo's released answers credited a question with the previous question's answer."""
    degenerate = (
        "Instruction in English: Add the given numbers.\n\n"
        "Response in English:\n\n"
        "Response in Nepali:\n"
        f"### Instruction:\n{CAPITAL_NE}\n\n### Response:\n{PREVIOUS}"
    )
    outputs = [PREVIOUS, degenerate]
    assert [extract_answer(text, "ne") for text in outputs] == [CAPITAL_ANSWER_NE, None]
    # the chain restarted without a marker: its own empty last part still wins over the earlier answer
    restarted = f"{PREVIOUS}\n\nInstruction in English: Add 2 and 3.\n\nResponse in Nepali:"
    assert extract_answer(restarted, "ne") is None


# -- building rows ---------------------------------------------------------------------------------------

CAPITAL_ROW = {
    "id": "ne-sft-7",
    "lang": "ne",
    "instruction": CAPITAL_NE,
    "input": "",
    "output": CAPITAL_ANSWER_NE,
}
SUM_ROW = {
    "id": "ne-sft-8",
    "lang": "ne",
    "instruction": SUM_NE,
    "input": SUM_INPUT_NE,
    "output": SUM_ANSWER_NE,
}


def test_with_the_english_row_no_request_is_sent():
    recorder = Recorder()
    english = {
        "id": "en-sft-8",
        "instruction": "Add the given numbers.",
        "input": "2 and 3",
        "output": "2 + 3 = 5",
    }
    record = build(SUM_ROW, recorder, english=english)
    assert recorder.requests == []
    assert record == {
        "id": "ne-sft-8",
        "lang": "ne",
        "instruction": SUM_NE,
        "input": SUM_INPUT_NE,
        "output": "Instruction in English: Add the given numbers.\n\n2 and 3\n\n"
        "Response in English: 2 + 3 = 5\n\n"
        f"Response in Nepali: {SUM_ANSWER_NE}",
        "english_instruction": "Add the given numbers.",
        "english_input": "2 and 3",
        "english_response": "2 + 3 = 5",
    }
    assert taco_messages(record)[2]["content"] == record["output"]  # clean labels


def test_without_the_english_row_the_fields_are_translated_with_numbers_protected():
    recorder = Recorder()
    record = build(SUM_ROW, recorder)
    assert recorder.requests == [
        translation_request(SUM_NE, "Nepali", "English", "ne", "en"),
        translation_request("⟦1⟧ र ⟦2⟧", "Nepali", "English", "ne", "en"),
        translation_request("⟦1⟧ र ⟦2⟧ को योगफल ⟦3⟧ हुन्छ।", "Nepali", "English", "ne", "en"),
    ]
    assert record["output"] == (
        "Instruction in English: Add the given numbers.\n\n2 and 3\n\n"
        "Response in English: The sum of 2 and 3 is 5.\n\n"
        f"Response in Nepali: {SUM_ANSWER_NE}"
    )
    assert (record["english_instruction"], record["english_input"]) == ("Add the given numbers.", "2 and 3")


def test_the_model_can_answer_in_english_and_translate_back():
    recorder = Recorder()
    record = build(CAPITAL_ROW, recorder, answer="model")
    answer = "Kathmandu is the capital of Nepal, and its largest city."
    expected_answer_request = ChatRequest.chat(
        [
            {"role": "system", "content": render("taco_answer")},
            {"role": "user", "content": "What is the capital of Nepal?"},
        ],
        temperature=0.0,
    )
    assert recorder.requests == [
        translation_request(CAPITAL_NE, "Nepali", "English", "ne", "en"),
        expected_answer_request,
        translation_request(answer, "English", "Nepali", "en", "ne"),
    ]
    assert extract_answer(record["output"], "ne") == TO_NEPALI[answer]
    assert record["english_response"] == answer
    assert record["instruction"] == CAPITAL_NE and record["output"].startswith(
        "Instruction in English: What is the capital of Nepal?\n\nResponse in English: Kathmandu is"
    )


def test_bad_languages_and_misaligned_english_rows():
    recorder = Recorder()
    with pytest.raises(UnknownLanguageError):
        asyncio.run(taco_record(CAPITAL_ROW, recorder.client, lang="xx"))
    with pytest.raises(UnknownLanguageError):
        make_taco("xx", recorder.client)
    with pytest.raises(ConfigError, match="cannot be English"):
        make_taco("en", recorder.client)
    with pytest.raises(ConfigError, match="answer must be one of"):
        make_taco("ne", recorder.client, answer="guess")
    with pytest.raises(RowRejected, match="ids differ"):
        build(CAPITAL_ROW, recorder, english={"id": "en-sft-6", "instruction": "Q", "output": "A"})
    with pytest.raises(RowRejected, match="input present in one row only"):
        build(
            SUM_ROW, recorder, english={"id": "en-sft-8", "instruction": "Add.", "input": "", "output": "5"}
        )
    with pytest.raises(RowRejected, match="row's lang is not ne"):
        build({**CAPITAL_ROW, "lang": "hi"}, recorder)
    with pytest.raises(DataError, match="share source row 8"):
        make_taco("ne", recorder.client, english_rows=[{"id": "en-sft-8"}, {"id": "en-8"}])
    assert recorder.requests == []


def _rejections(path: Path) -> dict[str, str]:
    return {row["id"]: row["reason"] for row in map(json.loads, path.read_text().splitlines())}


def test_rejections_are_counted_by_reason(tmp_path):
    recorder = Recorder()
    english = [{"id": "en-sft-7", "instruction": "What is the capital of Nepal?", "output": "Kathmandu."}]
    rows = [
        CAPITAL_ROW,  # paired with its English row: no request
        SUM_ROW,  # no English row: translated
        {"id": "ne-sft-20", "lang": "ne", "instruction": "  ", "input": "", "output": "केही"},
        {
            "id": "ne-sft-21",
            "lang": "ne",
            "instruction": CAPITAL_NE,
            "input": "",
            "output": "The capital of Nepal is Kathmandu, a very old city.",  # the wrong language
        },
        {
            "id": "ne-sft-22",
            "lang": "ne",
            "instruction": "एउटा खोलाको नाम लेख्नुहोस्।",  # its "English" comes back in Devanagari
            "input": "",
            "output": "कोशी नेपालको सबैभन्दा ठूलो नदी हो।",
        },
    ]
    work = make_taco("ne", recorder.client, english_rows=english)
    report = asyncio.run(run_rows(rows, work, tmp_path / "row.jsonl", step="taco", progress=False))
    assert report.written == 2 and not report.failed
    assert report.rejected == Counter(
        {"empty instruction": 1, "output not in Nepali": 1, "instruction: translation not in English": 1}
    )
    written = {row["id"]: row for row in map(json.loads, (tmp_path / "row.jsonl").read_text().splitlines())}
    assert written["ne-sft-7"]["english_response"] == "Kathmandu."
    assert written["ne-sft-8"]["english_response"] == "The sum of 2 and 3 is 5."
    assert _rejections(tmp_path / "row.rejected.jsonl")["ne-sft-21"] == "output not in Nepali"

    def ask(instruction_ne: str, n: int) -> dict:
        return {"id": f"ne-sft-{n}", "lang": "ne", "instruction": instruction_ne, "input": "", "output": ""}

    rows = [
        ask(CAPITAL_NE, 30),
        ask("हिमालयको बारेमा एउटा वाक्य लेख्नुहोस्।", 31),
        ask("एउटा रङको नाम लेख्नुहोस्।", 32),  # empty English answer
        ask("एउटा फलको नाम लेख्नुहोस्।", 33),  # translated "back" into English
        ask("एउटा जनावरको नाम लेख्नुहोस्।", 34),  # the answer carries a label
        ask("एउटा सहरको नाम लेख्नुहोस्।", 35),  # the answer hits max_tokens
    ]
    work = make_taco("ne", recorder.client, answer="model")
    report = asyncio.run(run_rows(rows, work, tmp_path / "model.jsonl", step="taco", progress=False))
    assert report.written == 2 and not report.failed
    assert report.rejected == Counter(
        {
            "English answer: empty": 1,
            "response: translation not in Nepali": 1,
            "a part contains a TaCo label": 1,
            "English answer: cut at max_tokens": 1,
        }
    )


# -- the curriculum --------------------------------------------------------------------------------------


def _epochs(sampler: CurriculumSampler, n: int) -> list[list[int]]:
    out = []
    for epoch in range(n):
        sampler.set_epoch(epoch)
        out.append(list(sampler))
    return out


def test_the_sampler_keeps_phases_in_order_and_shuffles_within():
    phases = [1, 0, 0, 1, 0, 0, 1, 0]  # rows of phase 0: 1, 2, 4, 5, 7; of phase 1: 0, 3, 6
    sampler = CurriculumSampler(phases, passes=2, seed=3)
    epochs = _epochs(sampler, 2)
    assert [len(e) for e in epochs] == [8, 8]
    sequence = epochs[0] + epochs[1]
    general, taco = sequence[:10], sequence[10:]
    assert sorted(general[:5]) == sorted(general[5:]) == [1, 2, 4, 5, 7]  # two whole passes over phase 0
    assert sorted(taco[:3]) == sorted(taco[3:]) == [0, 3, 6]  # then two over phase 1
    assert general[:5] != [1, 2, 4, 5, 7] or general[5:] != [1, 2, 4, 5, 7], "rows are shuffled in a phase"
    assert _epochs(CurriculumSampler(phases, passes=2, seed=3), 2) == epochs  # seeded, so resumable
    sampler.set_epoch(2)  # past the planned passes: more of the last phase only
    extra = list(sampler)
    assert (
        len(extra) == 8
        and sorted(extra[:3]) == sorted(extra[3:6]) == [0, 3, 6]
        and set(extra[6:]) <= {0, 3, 6}
    )
    ordered = CurriculumSampler(phases, passes=1, seed=3, shuffle=False)
    assert list(ordered) == [1, 2, 4, 5, 7, 0, 3, 6]


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"packing": True}, "packing=false"), ({"train_sampling_strategy": "group_by_length"}, "random")],
)
def test_settings_that_mix_phases_are_refused(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message):
        OkapiSFTConfig(
            **CPU_TRAINING_ARGS, output_dir=str(tmp_path), curriculum_datasets=["taco.jsonl"], **kw
        )


def test_the_taco_recipe_has_tacos_lora_settings():
    _, config, model_args = parse_stage_args("sft", OkapiSFTConfig, "taco", ["bf16=false"], lang="ne")
    assert model_args.model_name_or_path == "timdettmers/guanaco-33b-merged"
    assert model_args.use_peft and (model_args.lora_r, model_args.lora_alpha) == (32, 64)
    assert model_args.lora_dropout == 0.05
    assert model_args.lora_target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert config.curriculum_datasets == ["okapi_taco/taco/{lang}.jsonl"]
    assert config.packing is False and config.train_sampling_strategy == "random"


@pytest.fixture(scope="module")
def curriculum(tmp_path_factory) -> dict:
    """General vi data (built), TaCo rows made from all of it by the builder, and a tiny Llama."""
    root = tmp_path_factory.mktemp("taco")
    write_sample_raw(root / "raw", ["vi"], n_sft=20)
    build_dataset(root / "raw", root / "okapi_hf", ["vi"], ["sft"], progress=False)
    data = load_dataset("vi", "sft", root / "okapi_hf")
    rows = [*data["train"], *data["validation"]]
    client = LLMClient(FunctionBackend(lambda r: "In English: " + r.meta_dict["text"]))
    report = asyncio.run(
        run_rows(rows, make_taco("vi", client), root / "taco" / "vi.jsonl", step="taco", progress=False)
    )
    assert report.written == len(rows), report.summary()
    return {
        "root": root,
        "general": root / "okapi_hf",
        "taco": str(root / "taco" / "{lang}.jsonl"),
        "n_train": len(data["train"]),
        "validation_ids": set(data["validation"]["id"]),
        "model": make_tiny_model("llama", root / "model", seed=1),
    }


class BatchRecorder(OkapiSFTTrainer):
    """Records, for every training row in the order the model sees it, whether it is a TaCo row."""

    seen: ClassVar[list[str]] = []

    def training_step(self, model, inputs, *args, **kwargs):
        for labels in inputs["labels"]:
            text = self.processing_class.decode([t for t in labels.tolist() if t != -100])
            BatchRecorder.seen.append("taco" if "Instruction in English:" in text else "general")
        return super().training_step(model, inputs, *args, **kwargs)


CPU = [
    "bf16=false",
    "gradient_checkpointing=false",
    "use_cpu=true",
    "report_to=none",
    "disable_tqdm=true",
    "save_strategy=no",
    "max_length=512",
    "per_device_train_batch_size=4",
    "gradient_accumulation_steps=1",
    "learning_rate=1e-2",
    "warmup_steps=0",
    "logging_steps=1",
    "num_train_epochs=2",
]


@pytest.mark.slow
def test_the_taco_recipe_trains_general_rows_before_taco_rows(curriculum, tmp_path, monkeypatch):
    monkeypatch.setattr(run_sft, "OkapiSFTTrainer", BatchRecorder)
    BatchRecorder.seen = []
    out = main(
        [*CPU, f"curriculum_datasets={curriculum['taco']}"],
        recipe="taco",
        lang="vi",
        model_name_or_path=str(curriculum["model"]),
        dataset_path=str(curriculum["general"]),
        output_dir=str(tmp_path / "out"),
    )
    n_general = n_taco = curriculum["n_train"]  # TaCo rows of validation rows are left out
    assert BatchRecorder.seen == ["general"] * (2 * n_general) + ["taco"] * (2 * n_taco)

    report = json.loads((out / "sft_data_report.json").read_text())
    assert report["phase 0"]["rows"] == n_general
    assert report["phase 1"] == {
        "phase": 1,
        "source": curriculum["taco"],
        "rows": n_taco,
        "held_out": len(curriculum["validation_ids"]),
    }
    assert report["train"]["rows_in"] == n_general + n_taco
    state = json.loads((out / "trainer_state.json").read_text())
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    assert len(losses) == -(-2 * (n_general + n_taco) // 4)
    general_steps = 2 * n_general // 4
    # a tiny random model learns slowly through LoRA on attention alone, but it does learn
    assert min(losses[1:general_steps]) < losses[0] - 0.15, losses
    assert min(losses[general_steps + 1 :]) < losses[general_steps] - 0.1, losses
    config = yaml.safe_load((out / "run_config.yaml").read_text())
    assert config["OkapiSFTConfig"]["curriculum_datasets"] == [curriculum["taco"]]
    assert config["ModelConfig"]["lora_r"] == 32
    assert "then `" + curriculum["taco"] + "`" in (out / "README.md").read_text()
    # LoRA trained q/k/v/o only; the stage saved the adapter (as TaCo released one), naming its base
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(Path(curriculum["model"]).resolve())
    before = AutoModelForCausalLM.from_pretrained(curriculum["model"]).state_dict()
    after = load_model(out).state_dict()  # the adapter merged into its base
    assert before.keys() == after.keys()
    changed = {name.rsplit(".", 2)[-2] for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"q_proj", "k_proj", "v_proj", "o_proj"}


def test_bad_curriculum_data_is_named(curriculum, tmp_path):
    bad = tmp_path / "vi.jsonl"
    bad.write_text(json.dumps({"id": "vi-1", "lang": "vi", "instruction": "Q", "output": ""}) + "\n")
    common = dict(
        recipe="taco",
        lang="vi",
        model_name_or_path=str(curriculum["model"]),
        dataset_path=str(curriculum["general"]),
        output_dir=str(tmp_path / "out"),
    )
    with pytest.raises(DataError, match=r"curriculum_datasets\[0\] .*vi.jsonl, row vi-1: field 'output'"):
        main([*CPU, f"curriculum_datasets={bad}"], **common)
    with pytest.raises(OkapiError, match=r"curriculum_datasets\[0\] 'nowhere': .*neither a local folder"):
        main([*CPU, "curriculum_datasets=nowhere"], **common)
    with pytest.raises(DataError, match=r"missing\.jsonl does not exist"):
        main([*CPU, f"curriculum_datasets={tmp_path / 'missing.jsonl'}"], **common)
    assert not (tmp_path / "out").exists()


def test_a_phase_column_without_a_recipe_key_also_orders_training(curriculum, tmp_path):
    rows = [
        {"instruction": f"Câu hỏi {i}", "input": "", "output": f"Trả lời {i}", "phase": i % 2}
        for i in range(6)
    ]
    config = OkapiSFTConfig(
        **CPU_TRAINING_ARGS,
        output_dir=str(tmp_path),
        train_sampling_strategy="sequential",
        num_train_epochs=1,
    )
    trainer = OkapiSFTTrainer(str(curriculum["model"]), args=config, train_dataset=Dataset.from_list(rows))
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, CurriculumSampler) and list(sampler) == [0, 2, 4, 1, 3, 5]
    with pytest.raises(ConfigError, match="packing=false"):
        OkapiSFTTrainer(
            str(curriculum["model"]),
            args=OkapiSFTConfig(**CPU_TRAINING_ARGS, output_dir=str(tmp_path), packing=True),
            train_dataset=Dataset.from_list(rows),
        )
