"""``okapi-hf train sft``: supervised fine-tuning on one language's instructions (or a mixture).

Reads the ``<lang>`` (sft) configs of a built dataset, starts from ``--model`` (a base model: SFT is the
first stage, so there is no earlier stage to default to) and writes a causal LM that loads with
``AutoModelForCausalLM.from_pretrained``, its tokenizer, ``run_config.yaml``, ``trainer_state.json``,
``sft_data_report.json`` and a model card to ``runs/<run>/sft``, where ``okapi-hf train rm`` looks for it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from trl import ModelConfig, get_peft_config, get_quantization_config

from okapi_hf.cards import render_model_card, stage_history
from okapi_hf.errors import OkapiError
from okapi_hf.languages import resolve_langs
from okapi_hf.train.recipes import (
    RunArguments,
    check_model_path,
    head,
    load_splits,
    model_init_kwargs,
    output_folder,
    parse_stage_args,
    resolve_resume,
    save_trained,
    write_run_config,
)
from okapi_hf.train.sft import OkapiSFTConfig, OkapiSFTTrainer, mix_languages, save_data_reports

logger = logging.getLogger(__name__)

# The CLI passes --recipe explicitly; from Python the default is Okapi's LLaMA-7B recipe (`bloom-7b1` is
# the other shipped one, `tiny` the CPU smoke test).
DEFAULT_RECIPE = "llama-7b"
CARD_HYPERPARAMETERS = (
    "prompt_format",
    "loss_on",
    "lang_weights",
    "packing",
    "packing_strategy",
    "max_length",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
)
CARD_METRICS = ("loss", "mean_token_accuracy")
PROMPTS = {
    "okapi": 'prompt = format_prompt("...instruction...", "...input, or leave it out...")',
    "chat": 'prompt = render_chat(tokenizer, "...instruction...", "...input, or leave it out...")',
}
USAGE = """from transformers import AutoModelForCausalLM, AutoTokenizer
from okapi_hf import {helper}

tokenizer = AutoTokenizer.from_pretrained("{path}")
model = AutoModelForCausalLM.from_pretrained("{path}")
{prompt}
inputs = tokenizer(prompt, return_tensors="pt"{special})
output = model.generate(**inputs, max_new_tokens=256, do_sample=True, top_p=0.75, top_k=40)
print(tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip())"""


def main(argv: list[str], *, recipe: str = DEFAULT_RECIPE, **flags: str | None) -> Path:
    """Parse the recipe, overrides and flags, then train; returns the output folder."""
    run_args, config, model_args = parse_stage_args("sft", OkapiSFTConfig, recipe, argv, **flags)
    return train_sft(run_args, config, model_args)


def train_sft(run_args: RunArguments, config: OkapiSFTConfig, model_args: ModelConfig) -> Path:
    """The whole stage from Python: data, mixture, model, training, evaluation, saving, card."""
    if not model_args.model_name_or_path:
        raise OkapiError(
            "no base model to fine-tune: pass --model (a Hub id such as bigscience/bloom-7b1, or a folder), "
            "or set model_name_or_path in the recipe"
        )
    model = check_model_path(model_args.model_name_or_path)
    out = output_folder(run_args, config, "sft")
    langs = resolve_langs(run_args.lang)

    train, evaluation = load_splits(run_args, langs, "sft", config)
    # mix before taking the first N rows: the mixture comes back shuffled, so N rows keep its shares
    train, mixture = mix_languages(train, langs, config.lang_weights, config.seed)
    train = head(train, run_args.max_train_samples)

    config.model_init_kwargs = model_init_kwargs(model_args, config.model_init_kwargs)
    trainer = OkapiSFTTrainer(
        model,
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        peft_config=get_peft_config(model_args),
        quantization_config=get_quantization_config(model_args),
    )
    reports = {"mixture": mixture, **trainer.data_reports}
    if trainer.is_world_process_zero():
        write_run_config(out, run_args, config, model_args)
        save_data_reports(out, reports)
    trainer.train(resume_from_checkpoint=resolve_resume(config.resume_from_checkpoint, out))
    trainer.save_state()  # trainer_state.json: the loss curve and metrics of every logging step
    metrics = trainer.evaluate() if evaluation is not None else {}

    save_trained(trainer, out, model_args.use_peft)
    if trainer.is_world_process_zero():
        _write_card(out, model, langs, run_args, config, reports, metrics)
    logger.info("SFT model saved to %s", out)
    return out


def _write_card(out, model, langs, run_args, config, reports, metrics) -> None:
    shown = {k: metrics[f"eval_{k}"] for k in CARD_METRICS if f"eval_{k}" in metrics}
    loss = "the response tokens only" if config.loss_on == "response" else "prompt and response, as Okapi did"
    template = (
        "Okapi's prompt template" if config.prompt_format == "okapi" else "the tokenizer's chat template"
    )
    chat = config.prompt_format == "chat"
    usage = USAGE.format(
        path=out,
        helper="render_chat" if chat else "format_prompt",
        prompt=PROMPTS[config.prompt_format],
        special=", add_special_tokens=False" if chat else "",  # the chat template already adds them
    )
    card = render_model_card(
        title=f"Okapi SFT model ({', '.join(langs)})",
        description=(
            f"An instruction-following model fine-tuned on Okapi's translated instructions with {template}; "
            f"the loss covered {loss}. Prompt it the same way (see below); the answer is the text it "
            "generates after the prompt."
        ),
        stage="supervised fine-tuning (okapi-hf `OkapiSFTTrainer`, built on trl's `SFTTrainer`)",
        init_from=str(model),
        langs=langs,
        data=f"`{run_args.dataset_path or 'okapi_hf'}`, configs " + ", ".join(f"`{lang}`" for lang in langs),
        usage=usage,
        stages=stage_history(out),
        hyperparameters={
            k: getattr(getattr(config, k), "value", getattr(config, k)) for k in CARD_HYPERPARAMETERS
        },
        metrics=shown,
        data_report="\n".join(f"- {r.summary()}" for r in reports.values()),
        tags=["sft", "trl", "instruction-tuning"],
        pipeline_tag="text-generation",
    )
    (Path(out) / "README.md").write_text(card, encoding="utf-8")
