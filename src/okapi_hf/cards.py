"""Hub cards rendered from the templates in ``hub_cards/`` with huggingface_hub's card classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datasets import DatasetInfo, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData, EvalResult, ModelCard, ModelCardData

from okapi_hf.data.schema import SUBSETS
from okapi_hf.languages import get_language

OKAPI_CITATION = """@article{lai2023okapi,
  title   = {Okapi: Instruction-tuned Large Language Models in Multiple Languages with Reinforcement Learning from Human Feedback},
  author  = {Lai, Viet Dac and Nguyen, Chien Van and Ngo, Nghia Trung and Nguyen, Thuat and Dernoncourt, Franck and Rossi, Ryan A. and Nguyen, Thien Huu},
  journal = {arXiv preprint arXiv:2307.16039},
  year    = {2023}
}"""


def card_template(name: str) -> Path:
    """A template from ``hub_cards/``: inside the installed wheel, else in the source tree."""
    here = Path(__file__).resolve().parent
    for folder in (here / "hub_cards", here.parents[1] / "hub_cards"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"card template {name!r} not found in {here / 'hub_cards'} or the source tree")


def _size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return label
    return "1M<n<10M"


def render_dataset_card(build_info: dict[str, dict[str, Any]], repo_id: str = "okapi_hf") -> str:
    """The dataset card for a built folder, from its ``okapi_build.json`` records."""
    configs, infos, rows = [], DatasetInfosDict(), []
    for config, rec in build_info.items():
        subset = SUBSETS[rec["subset"]]
        splits = rec["splits"]
        configs.append(
            {
                "config_name": config,
                "data_files": [
                    {"split": s, "path": f"data/{rec['lang']}/{subset.name}/{s}-*.parquet"} for s in splits
                ],
            }
        )
        infos[config] = DatasetInfo(
            features=subset.features,
            splits=SplitDict({s: SplitInfo(name=s, **v) for s, v in splits.items()}),
        )
        rows.append(
            {
                "config": config,
                "lang": rec["lang"],
                "language": get_language(rec["lang"]).name,
                "group": get_language(rec["lang"]).group,
                "subset": subset.name,
                "train": splits.get("train", {}).get("num_examples", 0),
                "validation": splits.get("validation", {}).get("num_examples", 0),
                **rec,
            }
        )
    langs = sorted({rec["lang"] for rec in build_info.values()})
    # the card's code example uses a language that has the most configs, so every line runs
    example_lang = max(langs, key=lambda lang: sum(rec["lang"] == lang for rec in build_info.values()))
    examples = [r for r in rows if r["lang"] == example_lang]
    total = sum(r["train"] + r["validation"] for r in rows)
    card_data = DatasetCardData(
        language=langs,
        license="cc-by-nc-4.0",
        multilinguality="multilingual" if len(langs) > 1 else "monolingual",
        size_categories=_size_category(total),
        task_categories=["text-generation"],
        pretty_name="Okapi multilingual instruction, ranking and RL data",
        tags=["okapi", "rlhf", "instruction-tuning", "multilingual"],
        configs=configs,
    )
    infos.to_dataset_card_data(card_data)
    card = DatasetCard.from_template(
        card_data,
        template_path=str(card_template("dataset_card.md")),
        repo_id=repo_id,
        rows=rows,
        subsets=list(SUBSETS.values()),
        examples=examples,
        citation=OKAPI_CITATION,
    )
    return str(card)


def render_model_card(
    *,
    title: str,
    description: str,
    stage: str,
    init_from: str,
    langs: list[str],
    data: str,
    usage: str,
    hyperparameters: dict[str, Any],
    metrics: dict[str, float] | None = None,
    data_report: str | None = None,
    tags: list[str] | None = None,
    pipeline_tag: str | None = None,
    eval_results: list[EvalResult] | None = None,
) -> str:
    """The model card every training stage writes next to its weights (never with secrets in it).

    ``init_from`` becomes the card's ``base_model`` when it names a Hub model rather than a local folder.
    """
    base_model = None if Path(init_from).exists() or init_from.startswith((".", "/")) else init_from
    card_data = ModelCardData(
        language=langs,
        license="cc-by-nc-4.0",
        library_name="transformers",
        base_model=base_model,
        tags=["okapi-hf", "okapi", "multilingual", *(tags or [])],
        pipeline_tag=pipeline_tag,
        model_name=title if eval_results else None,
        eval_results=eval_results or None,
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(card_template("model_card.md")),
        title=title,
        description=description,
        stage=stage,
        init_from=init_from,
        languages=", ".join(f"{get_language(code).name} (`{code}`)" for code in langs),
        data=data,
        usage=usage,
        metrics=metrics or {},
        data_report=data_report,
        hyperparameters=hyperparameters,
        citation=OKAPI_CITATION,
    )
    return str(card)


# How to prompt a policy trained by any stage (SFT with Okapi's template, RLHF, DPO), for model cards.
POLICY_USAGE = """from transformers import AutoModelForCausalLM, AutoTokenizer
from okapi_hf import extract_response, format_prompt

tokenizer = AutoTokenizer.from_pretrained("{path}")
model = AutoModelForCausalLM.from_pretrained("{path}")
inputs = tokenizer(format_prompt("...instruction..."), return_tensors="pt")
output = model.generate(**inputs, max_new_tokens=256, do_sample=True, top_p=0.75, top_k=40)
print(extract_response(tokenizer.decode(output[0], skip_special_tokens=True)))"""
