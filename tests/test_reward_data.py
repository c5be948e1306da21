"""Bad input and data preparation for the K-wise reward trainer: what is kept, dropped, counted, raised."""

from __future__ import annotations

import json

import pytest
import torch
from datasets import Dataset, Features, List, Value
from peft import LoraConfig
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from okapi_hf.errors import DataError, OkapiError
from okapi_hf.prompts import format_prompt
from okapi_hf.testing import CPU_TRAINING_ARGS, make_tiny_model
from okapi_hf.train.reward import (
    DataCollatorForRanking,
    RankedRewardConfig,
    RankedRewardTrainer,
    RankingDataReport,
)
from okapi_hf.train.utils import freeze_bottom_layers

EOS = "</s>"

# Parameter names of the 4-block tiny models: the block stack, the final norm and the embeddings.
LAYOUT = {
    "bloom": {
        "blocks": "transformer.h.",
        "norm": "transformer.ln_f.",
        "embed": "transformer.word_embeddings",
    },
    "llama": {"blocks": "model.layers.", "norm": "model.norm.", "embed": "model.embed_tokens."},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        **{arch: make_tiny_model(arch, root / arch) for arch in ("bloom", "llama")},
        **{f"{arch}4": make_tiny_model(arch, root / f"{arch}4", num_layers=4) for arch in ("bloom", "llama")},
    }


@pytest.fixture(scope="module")
def tok(tiny):
    return AutoTokenizer.from_pretrained(tiny["llama"])


def _config(tmp_path, **kw):
    return RankedRewardConfig(**{**CPU_TRAINING_ARGS, "output_dir": str(tmp_path / "out"), **kw})


def _trainer(model_dir, rows, tmp_path, *, tokenizer=None, eval_rows=None, peft_config=None, **kw):
    return RankedRewardTrainer(
        str(model_dir),
        args=_config(tmp_path, **kw),
        train_dataset=rows if not isinstance(rows, list) else Dataset.from_list(rows),
        eval_dataset=None if eval_rows is None else Dataset.from_list(eval_rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def _row(row_id, responses, instruction="Viết một câu về mùa xuân.", input=""):
    return {"id": row_id, "instruction": instruction, "input": input, "responses": responses}


def _ids(tok, instruction, input, response, eos=EOS):
    return tok(format_prompt(instruction, input) + response + eos)["input_ids"]


def _prepared(trainer):
    return trainer.train_dataset["response_ids"]


# -- rows with too few responses, duplicates, empty responses ------------------------------------------


def test_rows_with_fewer_than_two_responses_are_dropped_and_counted(tiny, tok, tmp_path):
    rows = [
        _row("r0", ["Mùa xuân hoa nở.", "Mùa xuân đẹp.", "Trời mưa."]),
        _row("r1", []),
        _row("r2", ["Chỉ một."]),
    ]
    trainer = _trainer(tiny["llama"], rows, tmp_path)
    report = trainer.data_reports["train"]
    assert (report.rows_in, report.rows_kept, report.rows_too_few) == (3, 1, 2)
    assert (report.responses_in, report.responses_kept) == (4, 3)
    assert report.examples["too_few"] == ["r1", "r2"]
    assert sum(report.dropped.values()) == 0  # nothing was removed from a ranking; the rows were too short
    assert len(trainer.train_dataset) == 1
    instruction = rows[0]["instruction"]
    assert _prepared(trainer)[0] == [_ids(tok, instruction, "", r) for r in rows[0]["responses"]]
    summary = report.summary()
    assert summary.startswith("train: kept 1/3 rows, 3/4 responses")
    assert "dropped 2 rows with fewer than 2 usable responses (e.g. rows r1, r2)" in summary


def test_duplicates_keep_the_better_ranked_copy(tiny, tok, tmp_path):
    ranking = ["Hoa nở.", "Trời đẹp.", "Hoa nở.", "Không biết.", "Trời đẹp."]
    trainer = _trainer(tiny["llama"], [_row("dup", ranking), _row("ok", ["A.", "B."])], tmp_path)
    report = trainer.data_reports["train"]
    assert report.dropped["duplicate"] == 2
    assert report.examples["duplicate"] == ["dup"]
    assert (report.rows_kept, report.responses_in, report.responses_kept) == (2, 7, 5)
    instruction = _row("", [])["instruction"]
    # the copies ranked 3rd and 5th go; the order of what stays is the gold order
    assert _prepared(trainer)[0] == [
        _ids(tok, instruction, "", r) for r in ["Hoa nở.", "Trời đẹp.", "Không biết."]
    ]
    assert "dropped 2 duplicate responses (e.g. rows dup)" in report.summary()


def test_empty_whitespace_and_none_responses_are_dropped(tiny, tok, tmp_path):
    rows = [_row("e", ["Tốt nhất.", "", "  \n\t", None, "Tạm được."]), _row("f", [None, "Một.", " "])]
    trainer = _trainer(tiny["llama"], rows, tmp_path)
    report = trainer.data_reports["train"]
    assert report.dropped == {"empty": 5, "duplicate": 0, "overlong": 0}
    assert report.examples["empty"] == ["e", "f"]
    assert (report.rows_in, report.rows_kept, report.rows_too_few) == (2, 1, 1)
    assert report.examples["too_few"] == ["f"]
    assert (report.responses_in, report.responses_kept) == (8, 2)
    instruction = rows[0]["instruction"]
    assert _prepared(trainer) == [
        [_ids(tok, instruction, "", "Tốt nhất."), _ids(tok, instruction, "", "Tạm được.")]
    ]
    summary = report.summary()
    assert "kept 1/2 rows, 2/8 responses" in summary
    assert "dropped 5 empty responses (e.g. rows e, f)" in summary
    assert "(e.g. rows f)" in summary


def test_rows_without_an_id_are_named_by_their_index(tiny, tmp_path):
    rows = [{"instruction": "Q", "input": "", "responses": r} for r in (["A.", "B."], ["A."], ["C.", "D."])]
    report = _trainer(tiny["llama"], rows, tmp_path).data_reports["train"]
    assert report.examples["too_few"] == ["1"]
    assert "(e.g. rows 1)" in report.summary()


def test_integer_row_ids_are_reported(tiny, tmp_path):
    # A user dataset with an int `id` column; a dropped row must be reported, not crash the summary.
    rows = [
        {"id": 10, "instruction": "Q", "input": "", "responses": ["A.", "B."]},
        {"id": 11, "instruction": "Q", "input": "", "responses": ["only one"]},
    ]
    trainer = _trainer(tiny["llama"], rows, tmp_path)
    report = trainer.data_reports["train"]
    assert [str(r) for r in report.examples["too_few"]] == ["11"]
    assert "(e.g. rows 11)" in report.summary()


# -- overlong responses --------------------------------------------------------------------------------


def test_overlong_responses_are_dropped_and_the_rest_of_the_ranking_kept(tiny, tok, tmp_path):
    instruction = "Q"
    max_length = len(_ids(tok, instruction, "", "Một câu ngắn.")) + 2
    long = "Một câu trả lời rất dài và dài dòng. " * 6
    rows = [
        _row("a", ["Tốt.", long, "Một câu ngắn."], instruction=instruction),
        _row("b", [long, "Còn một."], instruction=instruction),
    ]
    trainer = _trainer(tiny["llama"], rows, tmp_path, max_length=max_length, overlong="drop")
    report = trainer.data_reports["train"]
    assert report.dropped["overlong"] == 2
    assert report.examples["overlong"] == ["a", "b"]
    assert report.truncated == 0
    assert (report.rows_kept, report.rows_too_few, report.examples["too_few"]) == (1, 1, ["b"])
    assert (report.responses_in, report.responses_kept) == (5, 2)
    assert _prepared(trainer) == [
        [_ids(tok, instruction, "", "Tốt."), _ids(tok, instruction, "", "Một câu ngắn.")]
    ]
    assert "dropped 2 overlong responses (e.g. rows a, b)" in report.summary()


def test_overlong_responses_are_truncated_and_counted(tiny, tok, tmp_path):
    instruction = "Q"
    max_length = len(_ids(tok, instruction, "", "")) + 8
    shared = "Mùa xuân đến, hoa đào nở rộ khắp các con phố. " * 4
    best, second, third = shared + "Kết thúc A.", shared + "Kết thúc B.", "Ngắn."
    rows = [
        _row("t", [best, second, third], instruction=instruction),
        _row("u", ["X.", "Y."], instruction=instruction),
    ]
    trainer = _trainer(tiny["llama"], rows, tmp_path, max_length=max_length, overlong="truncate")
    report = trainer.data_reports["train"]
    # both long responses are cut inside the shared prefix, so the second becomes a copy of the first
    assert report.truncated == 2
    assert report.examples["truncated"] == ["t"]
    assert report.dropped == {"empty": 0, "duplicate": 1, "overlong": 0}
    assert report.examples["duplicate"] == ["t"]
    assert (report.rows_kept, report.responses_in, report.responses_kept) == (2, 5, 4)
    kept = _prepared(trainer)[0]
    assert kept == [_ids(tok, instruction, "", best)[:max_length], _ids(tok, instruction, "", third)]
    assert all(len(ids) <= max_length for row in _prepared(trainer) for ids in row)
    summary = report.summary()
    assert "truncated 2 overlong responses (e.g. rows t)" in summary
    assert "dropped 1 duplicate responses (e.g. rows t)" in summary


def test_report_summary_lists_every_reason(tiny, tok, tmp_path):
    instruction = "Q"
    max_length = len(_ids(tok, instruction, "", "Một câu ngắn.")) + 2
    long = "Một câu trả lời rất dài và dài dòng. " * 6
    rows = [
        _row("good", ["A.", "B.", "C.", "D."], instruction=instruction),
        _row("mixed", ["A.", "", "A.", long, "B."], instruction=instruction),
        _row("gone", [long, None], instruction=instruction),
    ]
    report = _trainer(tiny["llama"], rows, tmp_path, max_length=max_length).data_reports["train"]
    assert report.dropped == {"empty": 2, "duplicate": 1, "overlong": 2}
    assert (report.rows_in, report.rows_kept, report.rows_too_few) == (3, 2, 1)
    assert (report.responses_in, report.responses_kept) == (11, 6)
    assert report.summary() == (
        "train: kept 2/3 rows, 6/11 responses; dropped 2 empty responses (e.g. rows mixed, gone); "
        "dropped 1 duplicate responses (e.g. rows mixed); dropped 2 overlong responses (e.g. rows mixed, gone); "
        "dropped 1 rows with fewer than 2 usable responses (e.g. rows gone)"
    )


# -- errors on bad input -------------------------------------------------------------------------------


def test_all_bad_data_raises_a_data_error(tiny, tmp_path):
    rows = [_row("x", ["Một."]), _row("y", ["", None]), _row("z", ["Hai.", "Hai."])]
    with pytest.raises(DataError, match="no usable rankings") as err:
        _trainer(tiny["llama"], rows, tmp_path)
    assert "kept 0/3 rows" in str(err.value)


def test_an_empty_dataset_raises_a_data_error(tiny, tmp_path):
    features = Features(
        {
            "id": Value("string"),
            "instruction": Value("string"),
            "input": Value("string"),
            "responses": List(Value("string")),
        }
    )
    empty = Dataset.from_dict({"id": [], "instruction": [], "input": [], "responses": []}, features=features)
    with pytest.raises(DataError, match="train dataset has no rows"):
        _trainer(tiny["llama"], empty, tmp_path)


def test_a_non_string_response_names_the_row(tiny, tmp_path):
    rows = [{"id": "row-42", "instruction": "Q", "input": "", "responses": [3, 4]}]
    with pytest.raises(DataError, match=r"row-42.*responses\[0\] is int"):
        _trainer(tiny["llama"], rows, tmp_path)


def test_responses_that_are_not_a_list_name_the_row(tiny, tmp_path):
    rows = [{"id": "row-7", "instruction": "Q", "input": "", "responses": "just one text"}]
    with pytest.raises(DataError, match=r"row-7.*must be a list"):
        _trainer(tiny["llama"], rows, tmp_path)


@pytest.mark.parametrize(
    "row",
    [
        {"question": "Q", "answers": ["A", "B"]},
        {"instruction": "Q", "input": "", "chosen": "A", "rejected": "B"},
        {"id": "r", "responses": ["A", "B"]},
    ],
    ids=["foreign", "pairwise", "no-prompt"],
)
def test_missing_columns_list_the_columns_found(tiny, tmp_path, row):
    with pytest.raises(DataError, match="responses") as err:
        _trainer(tiny["llama"], [row], tmp_path)
    for column in row:
        assert repr(column) in str(err.value)


def test_an_iterable_dataset_is_refused(tiny, tmp_path):
    rows = Dataset.from_list([_row("a", ["A.", "B."])]).to_iterable_dataset()
    with pytest.raises(TypeError, match="map-style"):
        _trainer(tiny["llama"], rows, tmp_path)


# -- tokenization ------------------------------------------------------------------------------------------


def test_okapi_rows_are_prompt_plus_response_plus_eos(tiny, tok, tmp_path):
    rows = [
        _row("in", ["Hello.", "Hi there, friend."], instruction="Dịch sang tiếng Anh", input="Xin chào"),
        _row("noin", ["Hà Nội.", "Sài Gòn.", "Huế."], instruction="Thủ đô của Việt Nam là gì?"),
    ]
    prepared = _prepared(_trainer(tiny["llama"], rows, tmp_path))
    for row, ids in zip(rows, prepared, strict=True):
        expected = [
            tok(format_prompt(row["instruction"], row["input"]) + r + EOS)["input_ids"]
            for r in row["responses"]
        ]
        assert ids == expected
        assert all(seq[-1] == tok.eos_token_id for seq in ids)
        assert all(tok.bos_token_id not in seq and tok.pad_token_id not in seq for seq in ids)
    assert tok.decode(prepared[0][0]).startswith(format_prompt("Dịch sang tiếng Anh", "Xin chào"))
    assert "### Input:\nXin chào" in tok.decode(prepared[0][0])
    assert "### Input:" not in tok.decode(prepared[1][0])


def test_chat_prompt_format_uses_the_chat_template(tiny, tok, tmp_path):
    rows = [
        _row("c1", ["Hello.", "Bye."], instruction="Dịch sang tiếng Anh", input="Xin chào"),
        _row("c2", ["Hà Nội.", "Huế."], instruction="Thủ đô?"),
    ]
    prepared = _prepared(_trainer(tiny["llama"], rows, tmp_path, prompt_format="chat"))
    # the tiny chat template: "<|role|>\n" + content, "\n" after user turns, eos after assistant turns
    assert prepared[0] == [
        tok(f"<|user|>\nDịch sang tiếng Anh\n\nXin chào\n<|assistant|>\n{r}{EOS}")["input_ids"]
        for r in ("Hello.", "Bye.")
    ]
    assert prepared[1] == [
        tok(f"<|user|>\nThủ đô?\n<|assistant|>\n{r}{EOS}")["input_ids"] for r in ("Hà Nội.", "Huế.")
    ]
    okapi = _prepared(_trainer(tiny["llama"], rows, tmp_path, prompt_format="okapi"))
    assert okapi[0] != prepared[0]


def test_rows_with_a_prompt_string_are_used_as_given(tiny, tok, tmp_path):
    rows = [
        {"prompt": "Câu hỏi: 2 + 2 = ?\nĐáp án:", "responses": [" 4", " 5", " 22"]},
        {"prompt": "Nói xin chào.", "responses": ["Xin chào!", "Chào."]},
    ]
    prepared = _prepared(_trainer(tiny["llama"], rows, tmp_path))
    assert prepared == [[tok(row["prompt"] + r + EOS)["input_ids"] for r in row["responses"]] for row in rows]


def test_rows_with_a_prompt_of_messages_use_the_chat_template(tiny, tok, tmp_path):
    rows = [
        {
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Chào bạn"}],
            "responses": ["Xin chào!", "Tạm biệt."],
        }
    ]
    prepared = _prepared(_trainer(tiny["llama"], rows, tmp_path))
    assert prepared == [
        [
            tok(f"<|system|>\nBe brief.\n<|user|>\nChào bạn\n<|assistant|>\n{r}{EOS}")["input_ids"]
            for r in ("Xin chào!", "Tạm biệt.")
        ]
    ]


def test_data_reports_are_saved_as_json_that_round_trips(tiny, tmp_path):
    rows = [_row("a", ["A.", "B.", "A."]), _row("b", ["Một."])]
    trainer = _trainer(tiny["llama"], rows, tmp_path, eval_rows=[_row("v", ["C.", "D.", ""])])
    path = trainer.save_data_reports(tmp_path / "reports")
    assert path == tmp_path / "reports" / "ranking_data_report.json"
    saved = json.loads(path.read_text())
    assert set(saved) == {"train", "eval"}
    for name, report in trainer.data_reports.items():
        assert RankingDataReport(**saved[name]) == report
    assert saved["train"]["dropped"]["duplicate"] == 1
    assert saved["eval"]["dropped"]["empty"] == 1
    assert saved["train"]["examples"]["too_few"] == ["b"]
    assert trainer.save_data_reports().parent == tmp_path / "out"  # default: the output folder


# -- the pad token ---------------------------------------------------------------------------------------


def _solo_and_batched_rewards(trainer, sequences):
    """Each sequence's reward alone, and in one padded batch through the trainer's collator."""
    model = trainer.model.eval()

    def forward(seqs):
        batch = trainer.data_collator([{"response_ids": seqs}])
        batch.pop("num_responses")
        batch.pop("position_ids", None)
        with torch.no_grad():
            return model(**batch).logits.squeeze(-1)

    solo = torch.cat([forward([s]) for s in sequences])
    return solo, forward(sequences)


def test_a_tokenizer_without_pad_token_pads_with_eos_and_appends_no_eos(tiny, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny["llama"])
    tokenizer.pad_token = None
    assert tokenizer.pad_token_id is None
    responses = ["Hà Nội.", "Thành phố Hồ Chí Minh là thành phố lớn nhất."]
    trainer = _trainer(tiny["llama"], [_row("p", responses, instruction="Q")], tmp_path, tokenizer=tokenizer)
    eos = tokenizer.eos_token_id
    assert trainer.processing_class.pad_token == EOS
    assert trainer.data_collator.pad_token_id == eos == trainer.model.config.pad_token_id
    prepared = _prepared(trainer)[0]
    assert prepared == [tokenizer(format_prompt("Q") + r)["input_ids"] for r in responses]
    for ids, response in zip(prepared, responses, strict=True):
        assert ids[-1] == tokenizer(response)["input_ids"][-1] != eos
        assert eos not in ids
    solo, batched = _solo_and_batched_rewards(trainer, prepared)
    torch.testing.assert_close(batched, solo, atol=1e-5, rtol=1e-4)


def test_a_tokenizer_without_pad_and_eos_tokens_is_refused(tiny, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny["llama"])
    tokenizer.pad_token = None
    tokenizer.eos_token = None
    with pytest.raises(OkapiError, match="pad token"):
        _trainer(tiny["llama"], [_row("p", ["A.", "B."])], tmp_path, tokenizer=tokenizer)


def test_the_configured_pad_token_is_the_one_padded_with(tiny, tmp_path):
    # trl's RewardConfig.pad_token: the collator and the model must agree on it, and since it is eos here
    # the responses must not end with it, or the reward would be read at the wrong token.
    responses = ["Hà Nội.", "Thành phố Hồ Chí Minh là thành phố lớn nhất."]
    with pytest.warns(FutureWarning, match="pad_token"):  # trl deprecates it; it works until trl 2
        trainer = _trainer(tiny["llama"], [_row("p", responses, instruction="Q")], tmp_path, pad_token=EOS)
    eos = trainer.processing_class.eos_token_id
    assert trainer.model.config.pad_token_id == eos
    assert trainer.data_collator.pad_token_id == trainer.model.config.pad_token_id
    assert all(ids[-1] != eos for ids in _prepared(trainer)[0])
    solo, batched = _solo_and_batched_rewards(trainer, _prepared(trainer)[0])
    torch.testing.assert_close(batched, solo, atol=1e-5, rtol=1e-4)


# -- config validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("loss_type", "pairwise"),
        ("overlong", "skip"),
        ("prompt_format", "alpaca"),
        ("padding_side", "middle"),
    ],
)
def test_config_rejects_unknown_choices(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        _config(tmp_path, **{field: value})


def test_config_accepts_every_documented_choice(tmp_path):
    for kw in (
        {"loss_type": "plackett_luce"},
        {"loss_type": "instructgpt", "margin": 0.5},
        {"overlong": "truncate"},
        {"prompt_format": "chat"},
        {"padding_side": "left"},
        {"padding_side": "right"},
    ):
        config = _config(tmp_path, **kw)
        assert all(getattr(config, k) == v for k, v in kw.items())


def test_margin_with_plackett_luce_is_refused(tmp_path):
    with pytest.raises(ValueError, match="margin"):
        _config(tmp_path, loss_type="plackett_luce", margin=0.5)


def test_num_unfrozen_layers_with_lora_is_refused(tiny, tmp_path):
    lora = LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["q_proj", "v_proj"])
    rows = [_row("a", ["A.", "B."])]
    with pytest.raises(ValueError, match="num_unfrozen_layers"):
        _trainer(tiny["llama"], rows, tmp_path, num_unfrozen_layers=1, peft_config=lora)
    trainer = _trainer(tiny["llama"], rows, tmp_path, peft_config=lora)  # LoRA alone is fine
    assert any("lora_" in name for name, _ in trainer.model.named_parameters())


# -- DataCollatorForRanking ----------------------------------------------------------------------------


EXAMPLES = [{"response_ids": [[5, 6, 7], [8]]}, {"response_ids": [[9, 10], [11, 12, 13, 14], [15]]}]


def test_collator_flattens_rankings_and_pads_right():
    batch = DataCollatorForRanking(pad_token_id=0, padding_side="right")(EXAMPLES)
    assert batch["num_responses"] == [2, 3]
    assert batch["input_ids"].tolist() == [
        [5, 6, 7, 0],
        [8, 0, 0, 0],
        [9, 10, 0, 0],
        [11, 12, 13, 14],
        [15, 0, 0, 0],
    ]
    assert batch["attention_mask"].tolist() == [
        [1, 1, 1, 0],
        [1, 0, 0, 0],
        [1, 1, 0, 0],
        [1, 1, 1, 1],
        [1, 0, 0, 0],
    ]
    assert "position_ids" not in batch


def test_collator_pads_left_with_position_ids_from_the_first_real_token():
    batch = DataCollatorForRanking(pad_token_id=3, padding_side="left")(EXAMPLES)
    assert batch["num_responses"] == [2, 3]
    assert batch["input_ids"].tolist() == [
        [3, 5, 6, 7],
        [3, 3, 3, 8],
        [3, 3, 9, 10],
        [11, 12, 13, 14],
        [3, 3, 3, 15],
    ]
    assert batch["attention_mask"].tolist() == [
        [0, 1, 1, 1],
        [0, 0, 0, 1],
        [0, 0, 1, 1],
        [1, 1, 1, 1],
        [0, 0, 0, 1],
    ]
    positions, mask = batch["position_ids"], batch["attention_mask"].bool()
    for row in range(len(positions)):
        real = positions[row][mask[row]]
        assert real.tolist() == list(range(len(real)))


def test_collator_pads_to_a_multiple():
    batch = DataCollatorForRanking(pad_token_id=0, pad_to_multiple_of=8)(EXAMPLES)
    assert batch["input_ids"].shape == (5, 8)
    assert batch["attention_mask"].sum().item() == 11


@pytest.mark.parametrize("arch", ["bloom", "llama"])
def test_the_trainer_collator_follows_the_tokenizer_padding_side(tiny, tmp_path, arch):
    trainer = _trainer(tiny[arch], [_row("a", ["A.", "Bbbbbbbb bbbbb."])], tmp_path)
    expected = "left" if arch == "bloom" else "right"
    assert trainer.data_collator.padding_side == expected
    assert trainer.data_collator.pad_token_id == trainer.processing_class.pad_token_id
    flipped = _trainer(tiny[arch], [_row("a", ["A.", "B."])], tmp_path, padding_side="right")
    assert flipped.data_collator.padding_side == "right"
    solo, batched = _solo_and_batched_rewards(trainer, _prepared(trainer)[0])
    torch.testing.assert_close(batched, solo, atol=1e-5, rtol=1e-4)


# -- freeze_bottom_layers --------------------------------------------------------------------------------


def _expected_trainable(model, arch, n, total=4):
    layout = LAYOUT[arch]
    top = tuple(f"{layout['blocks']}{i}." for i in range(total - n, total))
    return {
        name
        for name, _ in model.named_parameters()
        if name.startswith(top) or name.startswith(layout["norm"]) or name.startswith("score.")
    }


@pytest.mark.parametrize("arch", ["bloom", "llama"])
@pytest.mark.parametrize("n", [0, 1, 3, 4])
def test_freeze_bottom_layers_trains_only_the_top(tiny, arch, n):
    model = AutoModelForSequenceClassification.from_pretrained(tiny[f"{arch}4"], num_labels=1)
    trainable = freeze_bottom_layers(model, n)
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    assert names == _expected_trainable(model, arch, n)
    assert not any(name.startswith(LAYOUT[arch]["embed"]) for name in names)
    assert "score.weight" in names
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("arch", ["bloom", "llama"])
def test_freeze_bottom_layers_rejects_out_of_range(tiny, arch):
    model = AutoModelForSequenceClassification.from_pretrained(tiny[f"{arch}4"], num_labels=1)
    for n in (-1, 5):
        with pytest.raises(ValueError, match="between 0 and 4"):
            freeze_bottom_layers(model, n)
    assert all(p.requires_grad for p in model.parameters())  # a refused call changes nothing


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bloom", "llama"])
def test_training_with_frozen_layers_changes_only_the_top(tiny, tmp_path, arch):
    rows = [
        _row(f"r{i}", [f"Câu trả lời tốt số {i}.", f"Câu {i}.", "Không biết."], instruction=f"Câu hỏi {i}")
        for i in range(4)
    ]
    trainer = _trainer(
        tiny[f"{arch}4"],
        rows,
        tmp_path,
        num_unfrozen_layers=1,
        max_steps=2,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        weight_decay=0.1,  # decay would move frozen weights too, were they in the optimizer
        logging_steps=1,
    )
    expected = _expected_trainable(trainer.model, arch, 1)
    assert {name for name, p in trainer.model.named_parameters() if p.requires_grad} == expected
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    for name, value in before.items():
        if name in expected:
            assert not torch.equal(after[name].detach(), value), f"{name} did not train"
        else:
            assert torch.equal(after[name].detach(), value), f"frozen {name} changed"


def test_chat_rows_need_a_chat_template(tiny, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny["llama"])
    tokenizer.chat_template = None
    with pytest.raises(DataError, match="chat template"):
        _trainer(tiny["llama"], [_row("a", ["x", "y"])], tmp_path, tokenizer=tokenizer, prompt_format="chat")


def test_pretokenized_rows_need_two_responses(tiny, tmp_path):
    rows = Dataset.from_list([{"response_ids": [[5, 6], [7]]}, {"response_ids": [[5, 6]]}])
    with pytest.raises(DataError, match=r"rows \[1\] have fewer than 2"):
        _trainer(tiny["llama"], rows, tmp_path)
