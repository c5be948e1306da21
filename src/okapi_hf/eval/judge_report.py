"""`okapi-hf eval report`: judged answers per language and category, with their uncertainty.

For every (model, language, category), and every (model, language) over all categories: the mean
judge score with a bootstrap 95% confidence interval, how many judgements could not be parsed
(counted, never scored), the share of answers written in the question's language, and the mean
answer length. Written as ``report.md``, ``report.png``, ``report.json`` and ``model_index.yaml``
(which ``okapi-hf publish model --eval-results DIR`` puts into the model card).
"""

from __future__ import annotations

import json
import logging
import random
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import mean
from typing import Any

import yaml

from okapi_hf.create.runner import output_files, read_done
from okapi_hf.errors import DataError
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.languages import get_language

logger = logging.getLogger(__name__)

ALL = "all"  # the category of the per-language rows
PAIRWISE_POINTS = {"win": 1.0, "tie": 0.5, "loss": 0.0}


@dataclass
class ReportRow:
    model: str
    lang: str
    category: str
    answers: int
    judged: int
    unparsed: int
    score: float | None
    ci_low: float | None
    ci_high: float | None
    fidelity: float | None
    mean_chars: float | None


def bootstrap_ci(
    values: list[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean; seeded, so the same scores give the same interval."""
    if not values:
        raise ValueError("no values to bootstrap")
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    return means[int(tail * (resamples - 1))], means[int((1 - tail) * (resamples - 1))]


def score_of(judgement: dict[str, Any]) -> float | None:
    """A judgement's score: the 1-10 rating, or for pairwise judging 1 / 0.5 / 0 for win / tie / loss."""
    if judgement.get("mode", "single") == "pairwise":
        return PAIRWISE_POINTS.get(str(judgement.get("verdict")))
    rating = judgement.get("rating")
    return float(rating) if rating is not None else None


def summarize(judgements: list[dict[str, Any]], answers: list[dict[str, Any]]) -> list[ReportRow]:
    """Rows per (model, language, category) and per (model, language) over all categories."""
    from okapi_hf.eval.langid import language_fidelity

    texts = [(a.get("answers") or [""])[-1] for a in answers]
    identified = language_fidelity(texts, [a["lang"] for a in answers]).identified
    by_answer = {(_model(a), a["id"]): (a, code) for a, code in zip(answers, identified, strict=True)}
    groups: dict[tuple[str, str, str], dict[str, list]] = defaultdict(lambda: {"answers": [], "judged": []})
    for (model, _), (answer, code) in by_answer.items():
        for category in dict.fromkeys((_category(answer), ALL)):
            groups[(model, answer["lang"], category)]["answers"].append((answer, code))
    for judgement in judgements:
        for category in dict.fromkeys((_category(judgement), ALL)):
            groups[(_model(judgement), judgement["lang"], category)]["judged"].append(score_of(judgement))
    rows = []
    for (model, lang, category), group in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] != ALL, kv[0][2])
    ):
        scores = [s for s in group["judged"] if s is not None]
        low, high = bootstrap_ci(scores) if scores else (None, None)
        given = group["answers"]
        rows.append(
            ReportRow(
                model=model,
                lang=lang,
                category=category,
                answers=len(given),
                judged=len(group["judged"]),
                unparsed=len(group["judged"]) - len(scores),
                score=mean(scores) if scores else None,
                ci_low=low,
                ci_high=high,
                fidelity=mean(code == a["lang"] for a, code in given) if given else None,
                mean_chars=mean(len((a.get("answers") or [""])[-1]) for a, _ in given) if given else None,
            )
        )
    return rows


def _model(row: dict[str, Any]) -> str:
    """The model a row belongs to, as a short name (an endpoint spec ``openai:NAME@URL`` gives NAME)."""
    value = str(row.get("model") or "model")
    kind, sep, rest = value.partition(":")
    if sep and kind in ("openai", "local", "seq2seq"):
        value = rest.split("@", 1)[0]
    return value.rstrip("/").rsplit("/", 1)[-1] if Path(value).is_absolute() else value


def _category(row: dict[str, Any]) -> str:
    return str(row.get("category") or "general")


def unmatched(judgements: list[dict[str, Any]], answers: list[dict[str, Any]]) -> int:
    """Judgements whose answer is not among ``answers`` (they are scored, but have no fidelity or length)."""
    known = {(_model(a), a["id"]) for a in answers}
    return sum((_model(j), j["id"]) not in known for j in judgements)


def markdown(rows: list[ReportRow], *, pairwise: bool = False) -> str:
    """One table: per-language rows in bold, their categories under them."""
    what = "win rate (win 1, tie 0.5)" if pairwise else "judge score (1-10)"
    lines = [
        f"Mean {what} with a bootstrap 95% interval; unparsed judgements are counted, not scored; "
        "fidelity = share of answers in the question's language.",
        "",
        "| model | language | category | answers | judged | unparsed | score | 95% CI | fidelity | mean chars |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---:|",
    ]

    def fmt(value: float | None, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for r in rows:
        name = f"{get_language(r.lang).name} (`{r.lang}`)"
        category = f"**{r.category}**" if r.category == ALL else r.category
        ci = "-" if r.ci_low is None else f"{r.ci_low:.2f} to {r.ci_high:.2f}"
        lines.append(
            f"| {r.model} | {name} | {category} | {r.answers} | {r.judged} | {r.unparsed} | {fmt(r.score)} | {ci} "
            f"| {fmt(r.fidelity)} | {fmt(r.mean_chars, 0)} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[ReportRow], path: str | Path, *, pairwise: bool = False) -> Path:
    """Per-language scores with their intervals (one bar per model), and per category below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r.model for r in rows})
    fig, axes = plt.subplots(2, 1, figsize=(9, 7), squeeze=False)
    for ax, pick, title in (
        (axes[0, 0], lambda r: r.category == ALL, "per language"),
        (axes[1, 0], lambda r: r.category != ALL, "per language and category"),
    ):
        chosen = [r for r in rows if pick(r) and r.score is not None]
        labels = sorted({(r.lang, r.category) for r in chosen})
        width = 0.8 / max(len(models), 1)
        for k, model in enumerate(models):
            found = {(r.lang, r.category): r for r in chosen if r.model == model}
            xs = [i + k * width for i, key in enumerate(labels) if key in found]
            got = [found[key] for key in labels if key in found]
            ax.bar(
                xs,
                [r.score for r in got],
                width,
                yerr=[[r.score - r.ci_low for r in got], [r.ci_high - r.score for r in got]],
                capsize=2,
                label=model,
            )
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))])
        ax.set_xticklabels(
            [lang if cat == ALL else f"{lang}/{cat}" for lang, cat in labels], rotation=60, fontsize=7
        )
        ax.set_ylabel("win rate" if pairwise else "judge score")
        ax.set_title(title, fontsize=9)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def model_index(
    rows: list[ReportRow], bench: str = "vicuna", names: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The ``model-index`` block: one entry per model, with per language the judge score and fidelity."""
    return [
        {
            "name": (names or {}).get(model, model),
            "results": _results([r for r in rows if r.model == model], bench),
        }
        for model in sorted({r.model for r in rows})
    ]


def _results(rows: list[ReportRow], bench: str) -> list[dict[str, Any]]:
    results = []
    for r in rows:
        if r.category != ALL or r.score is None:
            continue
        metrics = [{"type": "judge_score", "name": "LLM-judge score", "value": round(r.score, 3)}]
        if r.fidelity is not None:
            metrics.append(
                {
                    "type": "language_fidelity",
                    "name": "answers in the language",
                    "value": round(r.fidelity, 3),
                }
            )
        results.append(
            {
                "task": {"type": "text-generation", "name": "Generative chat (LLM judge)"},
                "dataset": {
                    "name": f"{bench.title()} questions ({get_language(r.lang).name})",
                    "type": f"{bench}_{r.lang}",
                },
                "metrics": metrics,
            }
        )
    return results


def write_report(
    judgements_dir: str | Path, answers_dir: str | Path, out: str | Path, *, model_name: str | None = None
) -> list[ReportRow]:
    """Read ``<dir>/<lang>.jsonl`` judgements and answers, write the four report files to ``out``."""
    judgements = _read_folder(judgements_dir, "judgements")
    answers = _read_folder(answers_dir, "answers")
    rows = summarize(judgements, answers)
    pairwise = any(j.get("mode") == "pairwise" for j in judgements)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, pairwise=pairwise)
    missing = unmatched(judgements, answers)
    if missing:
        warning = (
            f"{missing} judgement(s) have no matching answer in {answers_dir}: no fidelity or length for them"
        )
        logger.warning(warning)
        table = f"**Note:** {warning}.\n\n{table}"
    atomic_write_text(out / "report.md", table)
    atomic_write_text(
        out / "report.json", json.dumps([asdict(r) for r in rows], indent=1, ensure_ascii=False)
    )
    plot(rows, out / "report.png", pairwise=pairwise)
    models = sorted({r.model for r in rows})
    names = {models[0]: model_name} if model_name and len(models) == 1 else None
    index = {"model-index": model_index(rows, names=names)}
    atomic_write_text(out / "model_index.yaml", yaml.safe_dump(index, sort_keys=False, allow_unicode=True))
    return rows


def _read_folder(folder: str | Path, what: str) -> list[dict[str, Any]]:
    files = output_files(folder)
    if not files:
        raise DataError(f"no {what} in {folder}: expected <lang>.jsonl files written by `okapi-hf eval`")
    rows = [row for path in files for row in read_done(path)]
    if not rows:
        raise DataError(f"{folder}: the {what} files are empty")
    return rows
