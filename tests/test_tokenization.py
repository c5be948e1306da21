"""One tokenization rule for prompts: every stage gives the model the same token ids for one prompt.

The reference is the tokenizer's own default (``tokenizer(prompt).input_ids``: Gemma and Llama put
their BOS in front, BLOOM nothing), computed here independently of okapi-hf; each stage's ids come
from the code path that stage really runs.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
)

from okapi_hf.chat import ChatPipeline
from okapi_hf.create.backends import LocalBackend
from okapi_hf.create.llm_types import ChatRequest
from okapi_hf.prompts import encode, format_prompt
from okapi_hf.testing import CHAT_TEMPLATE, make_tiny_model, train_tiny_tokenizer

INSTRUCTION, INPUT = "Tổng của 12 và 35 là bao nhiêu?", ""
RESPONSE = "Tổng của 12 và 35 là 47."
PROMPT = format_prompt(INSTRUCTION, INPUT)
CPU = {"bf16": False, "use_cpu": True, "report_to": "none"}


class _Recorder:
    """A stand-in model for generation: records the ids it is given and answers with EOS at once."""

    def __init__(self, tokenizer):
        self.calls: list[list[int]] = []
        self.generation_config = GenerationConfig(
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
        )
        self.device = torch.device("cpu")
        self.config = SimpleNamespace(max_position_embeddings=4096)
        self.eos = tokenizer.eos_token_id
        self.name_or_path = "recorder"

    def generate(self, input_ids, attention_mask=None, streamer=None, **kwargs):
        for row, mask in zip(input_ids, attention_mask, strict=True):
            self.calls.append(row[mask.bool()].tolist())
        output = torch.cat([input_ids, torch.full((len(input_ids), 1), self.eos)], dim=1)
        if streamer is not None:  # the streaming chat reads the reply from here
            streamer.put(input_ids)
            streamer.put(output[:, -1:])
            streamer.end()
        return output


def stage_ids(tokenizer, tiny_model_dir) -> dict[str, list[int]]:
    """The prompt's ids as SFT, RM, PPO, RLOO/GRPO, DPO, chat and a local backend make them."""
    from okapi_hf.train.dpo import ListwiseDPOConfig, _PromptAwareRowTokenizer
    from okapi_hf.train.ppo import PPOTrainer
    from okapi_hf.train.ppo_config import PPOConfig
    from okapi_hf.train.ranking import RankingTokenizer
    from okapi_hf.train.reward import RankedRewardConfig
    from okapi_hf.train.rewards import RewardModelScorer
    from okapi_hf.train.rl import prepare_prompts
    from okapi_hf.train.sft import OkapiSFTConfig, OkapiSFTTrainer

    row = {"id": "vi-0", "lang": "vi", "instruction": INSTRUCTION, "input": INPUT, "output": RESPONSE}
    ids: dict[str, list[int]] = {}

    sft = OkapiSFTTrainer(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=OkapiSFTConfig(output_dir="/tmp/unused", **CPU),
        train_dataset=Dataset.from_list([row]),
        processing_class=tokenizer,
    )
    example = sft.train_dataset[0]
    ids["sft"] = example["input_ids"][: next(i for i, label in enumerate(example["labels"]) if label != -100)]

    batch = {
        "id": ["r0"],
        "instruction": [INSTRUCTION],
        "input": [INPUT],
        "responses": [[RESPONSE, "Không biết."]],
    }
    rm_rows = RankingTokenizer(tokenizer, RankedRewardConfig(output_dir="/tmp/unused", **CPU), True)(batch, [0])
    ids["reward model"] = rm_rows["response_ids"][0][0][: len(ids["sft"])]

    ppo = PPOTrainer._tokenize(
        Dataset.from_list([row]), tokenizer, PPOConfig(output_dir="/tmp/unused", **CPU), "train"
    )
    ids["ppo"] = ppo[0]["prompt_ids"]

    prompts, _ = prepare_prompts(Dataset.from_list([row]), tokenizer, 256, "train")
    # trl's RLOO and GRPO tokenize the prompt column exactly so (rloo_trainer / grpo_trainer)
    ids["rloo/grpo"] = tokenizer(text=[prompts[0]["prompt"]], add_special_tokens=False)["input_ids"][0]

    dpo = _PromptAwareRowTokenizer(tokenizer, ListwiseDPOConfig(output_dir="/tmp/unused", **CPU), True)
    ids["dpo"] = dpo._prompt_ids(batch, 0)

    scorer = RewardModelScorer(
        AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1), tokenizer
    )
    ids["reward scoring (rloo/grpo)"] = scorer.token_ids(prompts[0]["prompt"], RESPONSE)[: len(ids["sft"])]

    recorder = _Recorder(tokenizer)
    tokenizer.padding_side = "left"
    pipe = ChatPipeline(recorder, tokenizer, template="okapi")
    pipe.generate(INSTRUCTION, INPUT)
    pipe.chat([{"role": "user", "content": INSTRUCTION}])
    list(pipe.chat([{"role": "user", "content": INSTRUCTION}], stream=True))
    pipe.chat_batch([[{"role": "user", "content": INSTRUCTION}], [{"role": "user", "content": "Xin chào"}]])
    ids["chat generate"], ids["chat"], ids["chat stream"], ids["chat batch"] = recorder.calls[:4]

    backend = LocalBackend("unused")
    recorder.calls.clear()
    tokenizer.chat_template = None  # no chat template: the local backend uses Okapi's prompt
    backend._generate(recorder, tokenizer, ChatRequest(messages=({"role": "user", "content": INSTRUCTION},)))
    ids["local backend"] = recorder.calls[0]
    return ids


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return make_tiny_model("llama", tmp_path_factory.mktemp("tok") / "llama")


def _check_every_stage(tokenizer, tiny_llama):
    reference = tokenizer(PROMPT).input_ids  # the tokenizer's own default, BOS where it puts it
    ids = stage_ids(tokenizer, tiny_llama)
    assert {stage: v == reference for stage, v in ids.items()} == dict.fromkeys(ids, True), ids
    return reference


def test_a_bloom_tokenizer_gets_no_bos_in_any_stage(tiny_llama):
    tokenizer = train_tiny_tokenizer(padding_side="left")  # BLOOM's: no special tokens by default
    reference = _check_every_stage(tokenizer, tiny_llama)
    assert tokenizer.bos_token_id not in reference


def test_a_llama_tokenizer_gets_its_bos_once_in_every_stage(tiny_llama):
    tokenizer = train_tiny_tokenizer(add_bos=True)  # Llama's post-processor: <s> in front
    reference = _check_every_stage(tokenizer, tiny_llama)
    assert reference[0] == tokenizer.bos_token_id and reference.count(tokenizer.bos_token_id) == 1


@pytest.mark.slow
def test_gemmas_tokenizer_gets_its_bos_once_in_every_stage(gemma, tiny_llama):
    tokenizer = AutoTokenizer.from_pretrained(gemma)
    reference = _check_every_stage(tokenizer, tiny_llama)
    assert reference[0] == tokenizer.bos_token_id == 2 and reference.count(2) == 1


def test_a_chat_template_that_writes_bos_gets_no_second_one():
    tokenizer = train_tiny_tokenizer(add_bos=True)
    tokenizer.chat_template = "{{ bos_token }}" + CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    recorder = _Recorder(tokenizer)
    pipe = ChatPipeline(recorder, tokenizer, template="chat")
    pipe.chat([{"role": "user", "content": INSTRUCTION}])
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": INSTRUCTION}], tokenize=True, add_generation_prompt=True
    )["input_ids"]
    assert recorder.calls[0] == rendered  # as apply_chat_template (and trl's chat SFT) tokenize it
    assert (
        recorder.calls[0][:2] == [tokenizer.bos_token_id, rendered[1]]
        and rendered[1] != tokenizer.bos_token_id
    )
    assert encode(tokenizer, tokenizer.bos_token + "x").count(tokenizer.bos_token_id) == 1


def test_a_default_end_of_sequence_token_never_ends_a_prompt():
    tokenizer = train_tiny_tokenizer()
    from tokenizers import processors

    eos = (tokenizer.eos_token, tokenizer.eos_token_id)
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[eos]
    )
    assert tokenizer("ab").input_ids[-1] == tokenizer.eos_token_id  # this tokenizer appends EOS by default
    assert encode(tokenizer, PROMPT) == tokenizer(PROMPT, add_special_tokens=False).input_ids
