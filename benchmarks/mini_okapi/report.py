"""From per-prompt rows to what people read: summary.json, table.md, chart.png and the closing summary.

Every number comes with its bootstrap 95% interval over prompts, and every arm's difference from SFT is
a paired interval over the same prompts. The verdict only calls a difference one when its interval
excludes zero; the wording says the tasks are synthetic and how small the run is.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from okapi_hf.languages import get_language

from .stats import Interval, bootstrap, paired_difference

# measure -> (heading, scale for display, digits)
MEASURES = {
    "exact": ("exact answer %", 100.0, 1),
    "correct": ("correct answer %", 100.0, 1),
    "reward": ("RM score", 1.0, 2),
    "in_language": ("in language %", 100.0, 1),
    "length_tokens": ("length (tokens)", 1.0, 1),
}
RL_ARMS = ("ppo", "grpo", "rloo", "dpo", "ppo_lang")
COLORS = ("#999999", "#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2")


@dataclass
class Results:
    """Everything one run measured, plus what it was."""

    size: str
    model: str
    langs: list[str]
    note: str
    replies: list[dict]
    rankings: list[dict]
    okapi: list[dict]
    okapi_note: str
    curves: dict[str, dict[str, list[float]]]
    timings: list[tuple[str, float]]
    stage_evals: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def arms(self) -> list[str]:
        return list(dict.fromkeys(r["arm"] for r in self.replies))


def _values(rows: list[dict], arm: str, lang: str, measure: str) -> list[float]:
    return [float(r[measure]) for r in rows if r["arm"] == arm and r["lang"] == lang]


def summarize(res: Results) -> dict[str, Any]:
    """Intervals per arm x language x measure, differences from SFT, the reward model's ranking quality."""
    arms: dict = defaultdict(dict)
    vs_sft: dict = defaultdict(dict)
    for arm in res.arms:
        for lang in res.langs:
            arms[arm][lang] = {m: bootstrap(_values(res.replies, arm, lang, m)) for m in MEASURES}
            if arm != "sft" and "sft" in res.arms:
                vs_sft[arm][lang] = {
                    m: paired_difference(
                        _values(res.replies, arm, lang, m), _values(res.replies, "sft", lang, m)
                    )
                    for m in MEASURES
                }
    rm = {
        lang: {
            m: bootstrap([r[m] for r in res.rankings if r["lang"] == lang])
            for m in ("pairwise_accuracy", "kendall_tau")
        }
        for lang in res.langs
    }
    okapi: dict = defaultdict(dict)
    for row in res.okapi:
        for metric in ("acc", "mc2"):
            if metric in row:
                key = f"{row['benchmark']}/{row['lang']}/{metric}"
                okapi[row["arm"]].setdefault(key, []).append(row[metric])
    okapi_intervals = {arm: {k: bootstrap(v) for k, v in d.items()} for arm, d in okapi.items()}
    return {"arms": dict(arms), "vs_sft": dict(vs_sft), "reward_model": rm, "okapi": okapi_intervals}


def to_json(summary: dict[str, Any]) -> Any:
    """Intervals as plain dicts, for summary.json."""
    if isinstance(summary, Interval):
        return summary.as_dict()
    if isinstance(summary, dict):
        return {k: to_json(v) for k, v in summary.items()}
    return summary


def table(res: Results, summary: dict[str, Any]) -> str:
    """The markdown report: per-language tables, differences from SFT, RM quality, Okapi items, curves, times."""
    lines = [
        f"# Mini-Okapi, `{res.size}` size: does RLHF beat SFT?",
        "",
        f"Model `{res.model}`; languages {', '.join(res.langs)}; {res.note}. The tasks are synthetic (okapi-hf's "
        "sample generator: arithmetic, comparisons, parity, list tasks) with checkable answers; prompts below "
        "are held out from every stage. Brackets: bootstrap 95% intervals over prompts.",
    ]
    for lang in res.langs:
        lines += _arm_table(res, summary, lang) + _delta_table(res, summary, lang)
    lines += _rm_table(res, summary) + _okapi_table(res, summary) + _curve_table(res) + _time_table(res)
    lines += ["", "## What this shows", "", *verdict_lines(res, summary), ""]
    return "\n".join(lines)


def _arm_table(res: Results, summary: dict[str, Any], lang: str) -> list[str]:
    n = summary["arms"][res.arms[0]][lang]["exact"].n
    name = get_language(lang).name
    out = ["", f"## {name} (`{lang}`), {n} held-out prompts", ""]
    out += [
        "| arm | " + " | ".join(h for h, _, _ in MEASURES.values()) + " |",
        "|---|" + "---:|" * len(MEASURES),
    ]
    for arm in res.arms:
        cells = [summary["arms"][arm][lang][m].show(s, d) for m, (_, s, d) in MEASURES.items()]
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
    return out


def _delta_table(res: Results, summary: dict[str, Any], lang: str) -> list[str]:
    if not summary["vs_sft"]:
        return []
    out = ["", f"Difference from SFT on the same `{lang}` prompts (paired):", ""]
    out += [
        "| arm | " + " | ".join(f"Δ {h}" for h, _, _ in MEASURES.values()) + " |",
        "|---|" + "---:|" * len(MEASURES),
    ]
    for arm, per_lang in summary["vs_sft"].items():
        cells = [per_lang[lang][m].show(s, d, sign=True) for m, (_, s, d) in MEASURES.items()]
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
    return out


def _rm_table(res: Results, summary: dict[str, Any]) -> list[str]:
    out = ["", "## The reward model on held-out rankings", ""]
    out += [
        "| language | rankings | pairwise accuracy | Kendall tau | mean score by rank (1 = best) |",
        "|---|---:|---:|---:|---|",
    ]
    for lang in res.langs:
        scores = [r["scores"] for r in res.rankings if r["lang"] == lang]
        means = (
            " / ".join(f"{sum(s[i] for s in scores) / len(scores):+.2f}" for i in range(4)) if scores else "-"
        )
        rm = summary["reward_model"][lang]
        out.append(
            f"| {lang} | {len(scores)} | {rm['pairwise_accuracy'].show(1, 2)} | {rm['kendall_tau'].show(1, 2)} | {means} |"
        )
    if res.stage_evals.get("rm"):
        acc = res.stage_evals["rm"].get("eval_pairwise_accuracy")
        if acc is not None:
            out += [
                "",
                f"On the built validation rankings (the stage's own evaluation): pairwise accuracy {acc:.2f}.",
            ]
    return out


def _okapi_table(res: Results, summary: dict[str, Any]) -> list[str]:
    out = ["", "## Okapi benchmarks (subset)", "", res.okapi_note + "."]
    keys = sorted({k for d in summary["okapi"].values() for k in d})
    if not keys:
        return out
    out += ["", "| arm | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for arm, values in summary["okapi"].items():
        out.append(
            f"| {arm} | " + " | ".join(values[k].show(100, 1) if k in values else "-" for k in keys) + " |"
        )
    return out


def _curve_table(res: Results) -> list[str]:
    out = [
        "",
        "## Training curves (first logged value -> last)",
        "",
        "| arm | reward | KL | length | loss |",
        "|---|---|---|---|---|",
    ]
    for arm, curve in res.curves.items():
        cells = [
            f"{v[0]:.3g} -> {v[-1]:.3g} ({len(v)})" if (v := curve.get(k)) else "-"
            for k in ("reward", "kl", "length", "loss")
        ]
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
    out += [
        "",
        "Reward: the reward model's score of the sampled replies (for ppo_lang plus the weighted language "
        "reward); KL: to the SFT policy; length: sampled reply tokens; the number of logged values in brackets.",
    ]
    return out


def _time_table(res: Results) -> list[str]:
    out = ["", "## Stage times", "", "| stage | seconds |", "|---|---:|"]
    out += [f"| {name} | {seconds:.1f} |" for name, seconds in res.timings]
    out.append(f"| **total** | **{sum(s for _, s in res.timings):.1f}** |")
    return out


def verdict_lines(res: Results, summary: dict[str, Any]) -> list[str]:
    """Per RL/DPO arm and language: the differences from SFT with intervals, and which ones are real."""
    lines = []
    for arm, per_lang in summary["vs_sft"].items():
        if arm not in RL_ARMS:
            continue
        for lang in res.langs:
            d = per_lang[lang]
            numbers = ", ".join(
                f"{MEASURES[m][0].removesuffix(' %')} {d[m].show(MEASURES[m][1], MEASURES[m][2], sign=True)}"
                for m in MEASURES
            )
            moved = [
                f"{word} {MEASURES[m][0].removesuffix(' %')}" for m in MEASURES if (word := direction(d[m]))
            ]
            found = (
                "beyond the intervals: " + ", ".join(moved) if moved else "no difference beyond the intervals"
            )
            lines.append(f"- **{arm}, {lang}** minus SFT: {numbers}; {found}.")
            if d["reward"].low > 0 and d["correct"].low <= 0:
                lines.append(
                    f"  - {arm} raised the reward model's score without more correct answers, which is what "
                    "reward hacking (or a reward model that misjudges) looks like."
                )
    lines += curve_notes(res)
    return [*lines, answer_line(res, summary)]


def answer_line(res: Results, summary: dict[str, Any]) -> str:
    """The question of the issue, answered on correct answers only, the measure that cannot be gamed."""
    pairs = [(arm, lang) for arm in summary["vs_sft"] if arm in RL_ARMS for lang in res.langs]
    better = [f"{a}/{lang}" for a, lang in pairs if summary["vs_sft"][a][lang]["correct"].low > 0]
    worse = [f"{a}/{lang}" for a, lang in pairs if summary["vs_sft"][a][lang]["correct"].high < 0]
    text = "- Answer: "
    if better:
        text += f"more correct answers than SFT, beyond the intervals, for {', '.join(better)}"
    else:
        text += "no RLHF or DPO arm gives more correct answers than SFT beyond the intervals"
    if worse:
        text += f"; fewer for {', '.join(worse)}"
    return text + (
        ". The tasks are synthetic and the run is small: this neither reproduces nor refutes Okapi's result "
        "on 7B models."
    )


def direction(delta: Interval) -> str | None:
    """``higher``/``lower`` when the interval of a difference excludes 0, else None (not a difference)."""
    if delta.n and delta.low > 0:
        return "higher"
    if delta.n and delta.high < 0:
        return "lower"
    return None


def curve_notes(res: Results) -> list[str]:
    """What the RL curves suggest: did the score rise, how far the policy moved (KL), did replies grow."""
    notes = []
    for arm, curve in res.curves.items():
        if arm not in RL_ARMS or "reward" not in curve:
            continue
        reward, kl, length = curve["reward"], curve.get("kl"), curve.get("length")
        text = (
            f"- {arm} in training: reward {reward[0]:.2f} -> {reward[-1]:.2f} over {len(reward)} logged steps"
        )
        if kl:
            text += f", KL to the SFT policy {kl[-1]:.3f} at the end"
        if length:
            text += f", sampled length {length[0]:.0f} -> {length[-1]:.0f} tokens"
        notes.append(text + ".")
    return notes


def chart(res: Results, summary: dict[str, Any], path: Path) -> None:
    """Top: each measure per language and arm with intervals. Bottom: RL curves and the reward model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(MEASURES), figsize=(3.4 * len(MEASURES), 6.4))
    for ax, (measure, (title, scale, _)) in zip(axes[0], MEASURES.items(), strict=True):
        _bars(ax, res, summary, measure, scale)
        ax.set_title(title, fontsize=9)
    axes[0][0].legend(fontsize=7, loc="upper left")
    for ax, key in zip(axes[1], ("reward", "kl", "length"), strict=False):
        _curves(ax, res, key)
    _rm_bars(axes[1][3], res, summary)
    _okapi_bars(axes[1][4], res, summary)
    fig.suptitle(
        f"Mini-Okapi ({res.size}): {Path(res.model).name}, held-out synthetic tasks, 95% bootstrap intervals"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _bars(ax: Any, res: Results, summary: dict[str, Any], measure: str, scale: float) -> None:
    width = 0.8 / len(res.arms)
    for i, arm in enumerate(res.arms):
        stats = [summary["arms"][arm][lang][measure] for lang in res.langs]
        xs = [j + (i - (len(res.arms) - 1) / 2) * width for j in range(len(res.langs))]
        means = [s.mean * scale for s in stats]
        errors = [[(s.mean - s.low) * scale for s in stats], [(s.high - s.mean) * scale for s in stats]]
        ax.bar(xs, means, width, yerr=errors, capsize=2, label=arm, color=COLORS[i % len(COLORS)])
    ax.set_xticks(range(len(res.langs)), res.langs)
    ax.axhline(0, color="black", linewidth=0.5)
    if scale == 100.0:
        ax.set_ylim(0, 100)


def _curves(ax: Any, res: Results, key: str) -> None:
    for i, arm in enumerate(res.arms):
        values = res.curves.get(arm, {}).get(key)
        if arm in RL_ARMS and values:
            ax.plot(range(1, len(values) + 1), values, marker=".", label=arm, color=COLORS[i % len(COLORS)])
    title = f"RL training: {key}" + (" (ppo_lang: RM + language)" if key == "reward" else "")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("logged step", fontsize=8)
    if ax.lines:
        ax.legend(fontsize=7)


def _rm_bars(ax: Any, res: Results, summary: dict[str, Any]) -> None:
    for j, metric in enumerate(("pairwise_accuracy", "kendall_tau")):
        stats = [summary["reward_model"][lang][metric] for lang in res.langs]
        xs = [i + (j - 0.5) * 0.4 for i in range(len(res.langs))]
        errors = [[s.mean - s.low for s in stats], [s.high - s.mean for s in stats]]
        ax.bar(xs, [s.mean for s in stats], 0.4, yerr=errors, capsize=2, label=metric.replace("_", " "))
    ax.set_xticks(range(len(res.langs)), res.langs)
    ax.set_title("reward model, held-out rankings", fontsize=9)
    ax.legend(fontsize=7)


def _okapi_bars(ax: Any, res: Results, summary: dict[str, Any]) -> None:
    keys = sorted({k for d in summary["okapi"].values() for k in d})
    if not keys:
        ax.axis("off")
        ax.text(0.5, 0.5, "Okapi ARC/TruthfulQA\nnot scored", ha="center", va="center", fontsize=9)
        return
    width = 0.8 / len(res.arms)
    for i, arm in enumerate(res.arms):
        stats = [summary["okapi"].get(arm, {}).get(k, Interval(0, 0, 0, 0)) for k in keys]
        xs = [j + (i - (len(res.arms) - 1) / 2) * width for j in range(len(keys))]
        errors = [[100 * (s.mean - s.low) for s in stats], [100 * (s.high - s.mean) for s in stats]]
        ax.bar(
            xs, [100 * s.mean for s in stats], width, yerr=errors, capsize=2, color=COLORS[i % len(COLORS)]
        )
    ax.set_xticks(range(len(keys)), [k.rsplit("/", 1)[0] for k in keys], fontsize=7, rotation=20)
    ax.set_title("Okapi items (acc / mc2, %)", fontsize=9)


def closing_summary(res: Results, summary: dict[str, Any]) -> str:
    """The lines printed at the end of a run: the key numbers and the verdict."""
    lines = [f"Mini-Okapi ({res.size}) done in {sum(s for _, s in res.timings):.0f}s; {res.model}"]
    for lang in res.langs:
        lines.append(
            f"  {lang}: "
            + ", ".join(
                f"{arm} {summary['arms'][arm][lang]['correct'].mean * 100:.0f}% correct" for arm in res.arms
            )
        )
    lines += ["", *verdict_lines(res, summary)]
    return "\n".join(lines)
