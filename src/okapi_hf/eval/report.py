"""Turn lm-eval's results into what people read: a language x benchmark table, a chart, a model-index.

The headline metric is ``acc`` (what the Okapi authors report) for the multiple-choice benchmarks
and ``mc2`` for TruthfulQA. Every table says which split each benchmark was scored on and how many
documents, and marks partial (``--limit``) runs. Macro means are plain means over languages, a
definition of ours: the authors define no cross-language aggregate.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any

from okapi_hf.languages import GROUPS, get_language

BENCHMARK_NAMES = {
    "arc": "ARC-Challenge",
    "arc_val": "ARC-Challenge (validation)",
    "hellaswag": "HellaSwag",
    "mmlu": "MMLU",
    "mmlu_val": "MMLU (val split)",
    "truthfulqa": "TruthfulQA (MC)",
}
# The split each task scores, in the release's names (the authors' ARC reference rows are on validation).
SPLITS = {
    "arc": "test",
    "arc_val": "validation",
    "hellaswag": "validation",
    "mmlu": "test",
    "mmlu_val": "val",
    "truthfulqa": "validation",
}
METRICS = ("acc", "acc_norm", "mc1", "mc2")
HEADLINE = {"truthfulqa": "mc2"}  # every other benchmark: acc


def headline_metric(bench: str) -> str:
    return HEADLINE.get(bench, "acc")


def task_details(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(benchmark, lang): {"split", "docs", "docs_in_split", "partial"}}`` from lm-eval's ``n-samples``."""
    details = {}
    counts = results.get("n-samples", {})
    for bench, lang in collect_scores(results):
        n = counts.get(f"okapi_{bench}_{lang}", {})
        docs, total = n.get("effective"), n.get("original")
        details[(bench, lang)] = {
            "split": SPLITS[bench],
            "docs": docs,
            "docs_in_split": total,
            "partial": docs is not None and total is not None and docs < total,
        }
    return details


def collect_scores(results: dict[str, Any]) -> dict[tuple[str, str], dict[str, float]]:
    """``{(benchmark, lang): {"acc": .., "acc_norm": ..}}`` from ``simple_evaluate``'s output."""
    scores = {}
    for task, values in results.get("results", {}).items():
        bench, _, lang = task.removeprefix("okapi_").rpartition("_")
        if (
            not task.startswith("okapi_")
            or bench not in BENCHMARK_NAMES
            or f"{bench}_{lang}" in BENCHMARK_NAMES
        ):
            continue  # a group (okapi_arc, okapi_mmlu_val), or a task that is not one of ours
        scores[(bench, lang)] = {m: float(values[f"{m},none"]) for m in METRICS if f"{m},none" in values}
    return scores


def markdown_table(
    scores: dict[tuple[str, str], dict[str, float]],
    metric: str = "acc",
    details: dict[tuple[str, str], dict[str, Any]] | None = None,
) -> str:
    """One row per language (grouped by resource level), one column per benchmark, macro means last.

    Column heads name the split scored; a score from a partial (``--limit``) run carries a ``*``.
    """
    details = details or {}
    benches = [b for b in BENCHMARK_NAMES if any(k[0] == b and metric in v for k, v in scores.items())]
    langs = sorted(
        {lang for (_, lang), v in scores.items() if metric in v},
        key=lambda c: (GROUPS.index(get_language(c).group), c),
    )
    head = ["language", "group", *(_column(b) for b in benches), "mean"]
    lines = [f"Okapi benchmarks, `{metric}` (x100)", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * 2 + "---:|" * (len(benches) + 1))

    def cell(value: float | None, partial: bool = False) -> str:
        return "-" if value is None else f"{100 * value:.1f}" + ("*" if partial else "")

    any_partial = False
    for lang in langs:
        row = [scores.get((b, lang), {}).get(metric) for b in benches]
        marks = [details.get((b, lang), {}).get("partial", False) for b in benches]
        any_partial |= any(m for m, v in zip(marks, row, strict=True) if v is not None)
        got = [v for v in row if v is not None]
        language = get_language(lang)
        cells = [
            f"{language.name} (`{lang}`)",
            language.group,
            *(cell(v, m) for v, m in zip(row, marks, strict=True)),
            cell(mean(got) if got else None, any(marks)),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    macro = [_macro(scores, b, metric) for b in benches]
    macro_marks = [any(d.get("partial", False) for (b2, _), d in details.items() if b2 == b) for b in benches]
    got = [v for v in macro if v is not None]
    cells = [cell(v, m) for v, m in zip(macro, macro_marks, strict=True)]
    lines.append(
        "| "
        + " | ".join(["**macro mean**", "", *cells, cell(mean(got) if got else None, any(macro_marks))])
        + " |"
    )
    if any_partial:
        lines += ["", "\\* partial run: scored on the first documents of the split only (`--limit`)."]
    return "\n".join(lines) + "\n"


def _column(bench: str) -> str:
    """A table head that names the split scored (once: ``ARC-Challenge (validation)`` already does)."""
    name = BENCHMARK_NAMES[bench]
    return name if SPLITS[bench] in name else f"{name} [{SPLITS[bench]}]"


def documents_table(details: dict[tuple[str, str], dict[str, Any]]) -> str:
    """Split and number of documents behind every score."""
    lines = ["What was scored", "", "| task | split | documents | of | run |", "|---|---|---:|---:|---|"]
    for (bench, lang), d in sorted(details.items()):
        run = "partial (`--limit`)" if d["partial"] else "full"
        lines.append(
            f"| `okapi_{bench}_{lang}` | {d['split']} | {d['docs']} | {d['docs_in_split']} | {run} |"
        )
    return "\n".join(lines) + "\n"


def _macro(scores: dict[tuple[str, str], dict[str, float]], bench: str, metric: str) -> float | None:
    values = [v[metric] for (b, _), v in scores.items() if b == bench and metric in v]
    return mean(values) if values else None


def plot(scores: dict[tuple[str, str], dict[str, float]], path: str | Path) -> Path:
    """Per-language bars of each benchmark's headline metric, languages grouped by resource level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = [b for b in BENCHMARK_NAMES if any(k[0] == b for k in scores)]
    langs = sorted({lang for _, lang in scores}, key=lambda c: (GROUPS.index(get_language(c).group), c))
    fig, axes = plt.subplots(
        len(benches), 1, figsize=(max(6, 0.45 * len(langs) + 2), 2.6 * len(benches)), squeeze=False
    )
    colours = dict(zip(GROUPS, ("#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f"), strict=True))
    for ax, bench in zip(axes[:, 0], benches, strict=True):
        metric = headline_metric(bench)
        values = [100 * scores.get((bench, lang), {}).get(metric, float("nan")) for lang in langs]
        ax.bar(langs, values, color=[colours[get_language(lang).group] for lang in langs])
        macro = _macro(scores, bench, metric)
        if macro is not None:
            ax.axhline(
                100 * macro, color="black", linestyle="--", linewidth=1, label=f"macro mean {100 * macro:.1f}"
            )
            ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{BENCHMARK_NAMES[bench]}, {SPLITS[bench]} split ({metric})", fontsize=10)
        ax.set_ylabel(f"{metric} x100")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[g]) for g in GROUPS]
    fig.legend(
        handles,
        [f"{g} resource" if g != "extra" else "extra" for g in GROUPS],
        loc="lower center",
        ncol=4,
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def model_index(scores: dict[tuple[str, str], dict[str, float]], model_name: str) -> list[dict[str, Any]]:
    """The ``model-index`` block of a model card: one result per benchmark and language."""
    results = []
    for (bench, lang), values in sorted(scores.items()):
        results.append(
            {
                "task": {"type": "multiple-choice", "name": "Multiple choice"},
                "dataset": {
                    "name": f"Okapi {BENCHMARK_NAMES[bench]} ({get_language(lang).name})",
                    "type": f"okapi_{bench}_{lang}",
                    "split": SPLITS[bench],
                },
                "metrics": [
                    {"type": m, "value": round(100 * values[m], 2), "name": m} for m in METRICS if m in values
                ],
            }
        )
    return [{"name": model_name, "results": results}]
