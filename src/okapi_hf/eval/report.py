"""Turn lm-eval's results into what people read: a language x benchmark table, a chart, a model-index.

Macro means are plain means over languages, as Okapi reported them, so a language with more
test items does not count more.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any

from okapi_hf.languages import GROUPS, get_language

BENCHMARK_NAMES = {
    "arc": "ARC-Challenge",
    "hellaswag": "HellaSwag",
    "mmlu": "MMLU",
    "mmlu_val": "MMLU (val split)",
}
METRICS = ("acc", "acc_norm")


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


def markdown_table(scores: dict[tuple[str, str], dict[str, float]], metric: str = "acc_norm") -> str:
    """One row per language (grouped by resource level), one column per benchmark, macro means last."""
    benches = [b for b in BENCHMARK_NAMES if any(k[0] == b for k in scores)]
    langs = sorted({lang for _, lang in scores}, key=lambda c: (GROUPS.index(get_language(c).group), c))
    head = ["language", "group", *(BENCHMARK_NAMES[b] for b in benches), "mean"]
    lines = [f"Okapi benchmarks, `{metric}` (x100)", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * 2 + "---:|" * (len(benches) + 1))

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    for lang in langs:
        row = [scores.get((b, lang), {}).get(metric) for b in benches]
        got = [v for v in row if v is not None]
        language = get_language(lang)
        cells = [
            f"{language.name} (`{lang}`)",
            language.group,
            *map(cell, row),
            cell(mean(got) if got else None),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    macro = [_macro(scores, b, metric) for b in benches]
    got = [v for v in macro if v is not None]
    lines.append(
        "| " + " | ".join(["**macro mean**", "", *map(cell, macro), cell(mean(got) if got else None)]) + " |"
    )
    return "\n".join(lines) + "\n"


def _macro(scores: dict[tuple[str, str], dict[str, float]], bench: str, metric: str) -> float | None:
    values = [v[metric] for (b, _), v in scores.items() if b == bench and metric in v]
    return mean(values) if values else None


def plot(scores: dict[tuple[str, str], dict[str, float]], path: str | Path, metric: str = "acc_norm") -> Path:
    """Per-language bars for each benchmark, languages grouped by resource level."""
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
        values = [100 * scores.get((bench, lang), {}).get(metric, float("nan")) for lang in langs]
        ax.bar(langs, values, color=[colours[get_language(lang).group] for lang in langs])
        macro = _macro(scores, bench, metric)
        if macro is not None:
            ax.axhline(
                100 * macro, color="black", linestyle="--", linewidth=1, label=f"macro mean {100 * macro:.1f}"
            )
            ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{BENCHMARK_NAMES[bench]} ({metric})", fontsize=10)
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
                },
                "metrics": [
                    {"type": m, "value": round(100 * values[m], 2), "name": m} for m in METRICS if m in values
                ],
            }
        )
    return [{"name": model_name, "results": results}]
