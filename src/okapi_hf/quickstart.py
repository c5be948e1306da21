"""``okapi-hf quickstart``: the whole pipeline once, on a real multilingual model.

Sample data in Okapi's release layout, built and loaded; Gemma 3 270M (real weights from the package
index, converted once) trained with the ``small`` recipes: LoRA SFT, a LoRA reward model on the
4-way rankings, a few PPO iterations; then base, SFT and RL side by side on held-out prompts (reply,
reward-model score, language, exact answer) and a small Okapi ARC evaluation, with a report, a chart
and an honest note on what so short a run shows. ``tiny=True`` swaps in tiny random models and the
``tiny`` recipes: every stage in about a minute, nothing learned. Each stage is a function returning
a one-line result; the runner times them and ends with a summary.

The terminal shows each stage's name, progress bars and the summary; everything the stages print (training
logs, tables, warnings) goes to ``<out>/quickstart.log`` (``verbose=True``: to the terminal as well).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from okapi_hf.errors import OkapiError
from okapi_hf.fsutil import atomic_write_text
from okapi_hf.languages import get_language

DEFAULT_MODEL = "gemma-3-270m"


@dataclass
class Plan:
    """What one quickstart run does; :func:`plan` fills it for a real or a tiny model."""

    lang: str
    model: str | None  # None: the tiny random Llama this run builds
    recipe: str
    rows: dict[str, int]  # sample rows per language and subset
    compare_prompts: int
    eval_docs: int
    eval_shots: int
    max_new_tokens: int
    results: dict[str, object] = field(default_factory=dict)
    verbose: bool = False  # the stages' full output on the terminal too


def plan(lang: str, model: str | None, tiny: bool) -> Plan:
    if tiny and model:
        raise OkapiError("--tiny trains tiny random models; drop --model, or drop --tiny to train that model")
    if tiny:
        return Plan(lang, None, "tiny", {"sft": 36, "ranking": 40, "rl": 16}, 3, 8, 0, 16)
    # sizes for about 10 minutes on 2 CPU cores with Gemma 3 270M (benchmarks/README.md, quickstart)
    return Plan(lang, model or DEFAULT_MODEL, "small", {"sft": 200, "ranking": 200, "rl": 64}, 6, 10, 0, 48)


def run_quickstart(
    out: str | Path = "runs/quickstart",
    lang: str = "vi",
    model: str | None = None,
    *,
    tiny: bool = False,
    verbose: bool = False,
) -> list[tuple[str, str, float]]:
    """Run the stages into ``out`` and print a summary; returns (stage, result, seconds) rows.

    The stages' own output goes to ``out/quickstart.log``; ``verbose`` shows it on the terminal too.
    """
    from okapi_hf.data.sample import SAMPLE_LANGS

    out = Path(out)
    lang = get_language(lang).code
    if lang not in SAMPLE_LANGS:
        raise OkapiError(f"the quickstart's sample data covers {', '.join(SAMPLE_LANGS)}; got {lang!r}")
    p = plan(lang, model, tiny)
    stages: list[tuple[str, Callable[[], str]]] = [
        ("sample data", lambda: _sample(out, p)),
        ("build dataset", lambda: _build(out)),
        ("load every config", lambda: _load(out)),
        ("model", lambda: _model(out, p)),
        ("okapi prompt", lambda: _prompt(out, p)),
        ("sft", lambda: _train(out, p, "sft")),
        ("reward model", lambda: _train(out, p, "rm")),
        ("ppo", lambda: _train(out, p, "rl")),
        ("side by side", lambda: _compare(out, p)),
        ("okapi eval", lambda: _evaluate(out, p)),
    ]
    p.verbose = verbose
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "quickstart.log"
    results = []
    what = "tiny random models" if tiny else p.model
    print(f"okapi-hf quickstart: {what}, {lang}; the full log goes to {log_path}", flush=True)
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        for i, (name, stage) in enumerate(stages, start=1):
            print(f"[{i}/{len(stages)}] {name}", flush=True)
            print(f"\n[{i}/{len(stages)}] {name}", file=log, flush=True)
            start = time.perf_counter()
            with _stage_output(log, verbose):
                result = stage()
            results.append((name, result, time.perf_counter() - start))
            print(f"{name}: {result}", file=log)
    report = _report(out, p, results)
    width = max(len(name) for name, _, _ in results)
    print(f"\nquickstart done in {sum(t for *_, t in results):.1f}s, outputs in {out}/")
    for name, result, seconds in results:
        print(f"  {name:<{width}}  {seconds:6.1f}s  {result}")
    print(f"\n{p.results['side by side table']}\n\n{_honest_note(p)}\n")
    print(f"log: {log_path} (each training stage's in train.log in its folder)\nreport: {report}")
    return results


class _BarsOnly(io.TextIOBase):
    """stderr during a quiet stage: progress bars (``\\r``, cursor moves) to the terminal, the rest to the log."""

    def __init__(self, terminal: IO[str], log: IO[str]) -> None:
        super().__init__()
        self.terminal, self.log, self.last = terminal, log, terminal

    def write(self, text: str) -> int:
        if text.strip("\n"):
            self.last = self.terminal if "\r" in text or "\x1b[" in text else self.log
        self.last.write(text)  # a lone newline ends whatever was written last
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.terminal, "encoding", None) or "utf-8"


class _Tee(io.TextIOBase):
    """stdout during a verbose stage: the terminal and the log."""

    def __init__(self, *streams: IO[str]) -> None:
        super().__init__()
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


@contextlib.contextmanager
def _stage_output(log: IO[str], verbose: bool) -> Iterator[None]:
    """What a stage prints goes to ``log``; quiet, the terminal keeps its progress bars only."""
    if verbose:
        with contextlib.redirect_stdout(_Tee(sys.stdout, log)):
            yield
        return

    def to_log(message: Any, category: type[Warning], filename: str, lineno: int, *args: Any) -> None:
        log.write(warnings.formatwarning(message, category, filename, lineno))

    err = _BarsOnly(sys.stderr, log)
    # libraries' log handlers hold the stderr of their import time: point them at the log too
    handlers = [
        h
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for h in getattr(logger, "handlers", [])
        if type(h) is logging.StreamHandler and h.stream in (sys.stderr, sys.__stderr__)
    ]
    streams = [h.setStream(err) for h in handlers]
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(err):
            warnings.showwarning = to_log
            yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)


def _sample(out: Path, p: Plan) -> str:
    from okapi_hf.data.sample import write_sample_raw

    raw = write_sample_raw(out / "raw", n_sft=p.rows["sft"], n_ranking=p.rows["ranking"], n_rl=p.rows["rl"])
    return f"{sum(1 for _ in raw.rglob('*.json'))} raw files in the release layout under {raw}"


def _build(out: Path) -> str:
    from okapi_hf.data.build import build_dataset
    from okapi_hf.data.sample import SAMPLE_LANGS

    result = build_dataset(out / "raw", out / "okapi_hf", list(SAMPLE_LANGS))
    print(result.summary())
    return f"{len(result.splits)} configs in {result.out_dir}"


def _load(out: Path) -> str:
    import datasets
    from huggingface_hub import DatasetCard
    from tqdm.auto import tqdm

    configs = [c["config_name"] for c in DatasetCard.load(out / "okapi_hf" / "README.md").data.configs]
    rows = 0
    datasets.disable_progress_bars()  # one bar per split of 18 configs says nothing
    for config in tqdm(configs, desc="load_dataset", unit="config"):
        rows += sum(split.num_rows for split in datasets.load_dataset(str(out / "okapi_hf"), config).values())
    datasets.enable_progress_bars()
    return f"{len(configs)} configs, {rows} rows via datasets.load_dataset"


def _model(out: Path, p: Plan) -> str:
    """The base model: a preset, file or folder prepared for every stage, or the tiny random ones."""
    from okapi_hf.models import describe, resolve_model

    if p.model is None:
        from okapi_hf.testing import TINY_ARCHS, make_tiny_model

        paths = [make_tiny_model(arch, out / "models" / f"tiny-{arch}") for arch in TINY_ARCHS]
        p.model = str(paths[TINY_ARCHS.index("llama")])
        return f"tiny random models {', '.join(str(x) for x in paths)} (nothing real is learned)"
    p.model = resolve_model(p.model)
    return describe(p.model)


def _prompt(out: Path, p: Plan) -> str:
    from okapi_hf.data.load import load_dataset
    from okapi_hf.models import load_tokenizer
    from okapi_hf.prompts import encode, format_example

    row = load_dataset(p.lang, "sft", path=out / "okapi_hf", split="train")[0]
    text = format_example(row["instruction"], row["input"], row["output"])
    print(text)
    return f"{len(encode(load_tokenizer(p.model), text))} tokens for one {p.lang} training example"


STAGE_NAMES = {"sft": "SFT", "rm": "K-wise reward model", "rl": "PPO policy"}


def _train(out: Path, p: Plan, stage: str) -> str:
    """One stage with the plan's recipe; each finds the previous one under runs/pipeline/."""
    from okapi_hf.train.pipeline import run_stage

    path = run_stage(
        stage,
        [],
        recipe=p.recipe,
        lang=p.lang,
        model_name_or_path=p.model if stage == "sft" else None,
        dataset_path=str(out / "okapi_hf"),
        runs_dir=str(out / "runs"),
        run="pipeline",
        verbose=p.verbose,
    )
    history = json.loads((path / "trainer_state.json").read_text())["log_history"]
    key = "reward/score" if stage == "rl" else "loss"
    curve = [h[key] for h in history if key in h]
    text = f"{STAGE_NAMES[stage]} ({p.recipe} recipe), {key} {curve[0]:.3f} -> {curve[-1]:.3f}"
    final = history[-1] if history else {}
    if stage == "rm" and "eval_pairwise_accuracy" in final:
        text += f", held-out pairwise accuracy {final['eval_pairwise_accuracy']:.2f}"
    p.results[stage] = str(path)
    return f"{text}, saved to {path}"


def _compare(out: Path, p: Plan) -> str:
    """Base, SFT and RL answer the same held-out prompts, greedily; the reward model scores each reply."""
    from okapi_hf.compare import compare_models, held_out_prompts, markdown, summarize

    prompts = held_out_prompts(out / "okapi_hf", p.lang, p.compare_prompts)
    models = {"base": p.model, "sft": p.results["sft"], "rl": p.results["rl"]}
    replies = compare_models(
        models, prompts, p.lang, reward_model=p.results["rm"], max_new_tokens=p.max_new_tokens
    )
    with open(out / "side_by_side.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r.as_dict(), ensure_ascii=False) + "\n" for r in replies)
    p.results["side by side table"] = markdown(replies, p.lang)
    p.results["summaries"] = summarize(replies, p.lang)
    right = ", ".join(f"{s.model} {s.correct}/{s.n}" for s in p.results["summaries"])
    return (
        f"{len(prompts)} held-out {p.lang} prompts; exact answers: {right}; in {out / 'side_by_side.jsonl'}"
    )


def _evaluate(out: Path, p: Plan) -> str:
    """okapi_arc_<lang> through lm-eval for each model: the authors' items if at hand, else sample items."""
    from okapi_hf.eval.harness import run_eval

    source, note = _eval_source(out, p.lang)
    previous = os.environ.get("OKAPI_HF_EVAL_DIR")
    if source is not None:  # None: the Hub copy, which lm-eval reads when the variable is unset
        os.environ["OKAPI_HF_EVAL_DIR"] = str(source)
    scores = {}
    try:
        for name, path in {"base": p.model, "sft": p.results["sft"], "rl": p.results["rl"]}.items():
            results = run_eval(
                "okapi-hf",
                f"pretrained={path}",
                p.lang,
                "arc",
                out / "eval" / name,
                limit=p.eval_docs,
                num_fewshot=p.eval_shots,
                device="cpu",
                model_name=name,
            )
            scores[name] = results["results"][f"okapi_arc_{p.lang}"]["acc,none"]
    finally:
        if previous is None:
            os.environ.pop("OKAPI_HF_EVAL_DIR", None)
        else:
            os.environ["OKAPI_HF_EVAL_DIR"] = previous
    p.results["eval"] = scores
    p.results["eval note"] = note
    shown = ", ".join(f"{name} {acc:.2f}" for name, acc in scores.items())
    return f"okapi_arc_{p.lang} acc ({p.eval_docs} items, {p.eval_shots}-shot, {note}): {shown}"


def _eval_source(out: Path, lang: str) -> tuple[Path | None, str]:
    """The authors' translated ARC (``OKAPI_HF_EVAL_DIR``, else the Hub copy if it loads), else sample items."""
    from okapi_hf.errors import DataError
    from okapi_hf.eval.protocol import load_benchmark

    given = os.environ.get("OKAPI_HF_EVAL_DIR")
    if given:
        return Path(given), f"the authors' ARC-{lang} from {given}"
    try:
        load_benchmark("arc", lang)["test"]
    except DataError:
        print(
            f"the authors' ARC-{lang} is not at hand (no OKAPI_HF_EVAL_DIR, and the Hub copy does not load): "
            "scoring held-out sample rankings as multiple choice in ARC's format instead"
        )
        return _sample_eval(out, lang), "sample rankings as 3-way multiple choice, not the real ARC"
    return None, f"the authors' ARC-{lang} from the Hub copy"


def _sample_eval(out: Path, lang: str) -> Path:
    """ARC-format items made from the sample rankings: the complete answer against a wrong one and a refusal.

    A sample ranking orders complete > terse > wrong > unhelpful; the terse answer is also right, so it
    is left out, and the three others become the options in a seeded order. Scored items come from the
    validation rankings (which no stage trains on), shots from the training ones.
    """
    import random

    from okapi_hf.data.load import load_dataset

    rng = random.Random(0)
    folder = out / "eval_data"
    (folder / "m_arc").mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train"), ("validation", "test")):
        items = []
        for i, row in enumerate(load_dataset(lang, "ranking", path=out / "okapi_hf", split=split)):
            options = [row["responses"][0], *row["responses"][2:4]]
            rng.shuffle(options)
            question = row["instruction"] + (f"\n{row['input']}" if row["input"] else "")
            answer = "ABC"[options.index(row["responses"][0])]
            item = {"id": f"sample/{lang}/{split}/{i}", "instruction": question, "answer": answer}
            items.append(item | {f"option_{c}": text for c, text in zip("abc", options, strict=True)})
        text = json.dumps(items, ensure_ascii=False, indent=1)
        (folder / "m_arc" / f"{lang}_{name}.json").write_text(text, encoding="utf-8")
    return folder


def _honest_note(p: Plan) -> str:
    if p.recipe == "tiny":
        return "What this run shows: every stage runs end to end. The models are tiny and random: nothing is learned."
    summaries = {s.model: s for s in p.results.get("summaries", [])}
    n = next(iter(summaries.values())).n if summaries else 0
    return (
        "What this run can show: every stage runs on a real multilingual model, and SFT teaches it the task "
        f"format (exact answers on {n} held-out prompts: "
        + ", ".join(f"{name} {s.correct}/{s.n}" for name, s in summaries.items())
        + "). What it cannot show: whether RLHF beats SFT. A few PPO iterations of 8 rollouts move the policy "
        f"little, the reward model saw a few dozen rankings, and {n} prompts and {p.eval_docs} ARC items are "
        "far too few to tell models apart (one answer is "
        f"{100 / max(n, 1):.0f} points of exact-answer accuracy). The tasks are synthetic. "
        "Okapi compared them after training 7B models on 42K rankings and hundreds of PPO iterations."
    )


def _report(out: Path, p: Plan, results: list[tuple[str, str, float]]) -> Path:
    """quickstart.md (stages, side by side, evaluation, the honest note) and quickstart.png."""
    lines = [
        "# okapi-hf quickstart",
        "",
        f"Model: `{p.model}`; recipe `{p.recipe}`; language `{p.lang}`.",
        "",
    ]
    lines += ["| stage | seconds | result |", "|---|---:|---|"]
    lines += [f"| {name} | {seconds:.1f} | {result} |" for name, result, seconds in results]
    lines += ["", "## Side by side on held-out prompts", "", str(p.results.get("side by side table", ""))]
    lines += [
        "",
        "## Okapi evaluation",
        "",
        f"okapi_arc_{p.lang}, {p.eval_docs} items, {p.eval_shots}-shot, ",
    ]
    lines[-1] += f"{p.results.get('eval note', '')}: " + ", ".join(
        f"{name} acc {acc:.2f}" for name, acc in p.results.get("eval", {}).items()
    )
    lines += ["", "## What this shows", "", _honest_note(p), ""]
    path = out / "quickstart.md"
    atomic_write_text(path, "\n".join(lines))
    _plot(out / "quickstart.png", p)
    return path


def _plot(path: Path, p: Plan) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summaries = p.results.get("summaries", [])
    if not summaries:
        return
    names = [s.model for s in summaries]
    panels = {
        "exact answers (%)": [100 * s.correct / s.n for s in summaries],
        f"replies in {get_language(p.lang).name} (%)": [100 * s.in_language / s.n for s in summaries],
        "mean reward-model score": [s.mean_reward or 0.0 for s in summaries],
        f"ARC acc (%), {p.eval_docs} items": [100 * p.results.get("eval", {}).get(n, 0.0) for n in names],
    }
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3))
    for ax, (title, values) in zip(axes, panels.items(), strict=True):
        ax.bar(names, values, color=["#999999", "#4c78a8", "#f58518"][: len(names)])
        ax.set_title(title, fontsize=9)
        if "%" in title:
            ax.set_ylim(0, 100)
        ax.axhline(0, color="black", linewidth=0.5)
    fig.suptitle(f"okapi-hf quickstart: {p.model.rsplit('/', 1)[-1]} ({p.lang}), held-out prompts")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
