"""The command: data, base model, six arms, held-out answers, scores, Okapi items, report.

Each step is timed and logged to ``<out>/run.log`` (everything printed is copied there too).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .sizes import ARMS, SIZES, Size, group_recipe, smoke

DEFAULT_OUT = "runs/mini_okapi"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/mini_okapi.py",
        description="Mini-Okapi: base, SFT, SFT+RM+PPO, SFT+GRPO (or RLOO), SFT+listwise DPO and SFT+PPO with a "
        "language reward, from one base model and seed, measured on held-out synthetic tasks in two languages.",
    )
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="cpu", help="toy (test), cpu (<= 60 min on 2 cores), gpu"
    )
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument(
        "--model", help="base model (preset, folder, .gguf, Hub id; 'tiny': a tiny random Llama)"
    )
    parser.add_argument("--langs", default="vi,bn", help="languages with sample data (default vi,bn)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the data and of every stage")
    parser.add_argument(
        "--device",
        default="auto",
        help="where answers, reward scores and Okapi items are computed: auto (cuda if torch sees one), cpu, "
        "cuda. The training stages use the GPU whenever torch sees one (the trainers' own choice).",
    )
    parser.add_argument("--group", choices=("grpo", "rloo"), default="grpo", help="the group-relative RL arm")
    parser.add_argument(
        "--smoke", action="store_true", help="the size's recipes at toy counts (plumbing check)"
    )
    return parser.parse_args(argv)


class _Tee:
    """A stream that writes to the terminal and to run.log."""

    def __init__(self, stream: TextIO, log: TextIO) -> None:
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.log.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.log.flush()
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "run.log", "a", encoding="utf-8") as log:
        old = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(sys.stdout, log), _Tee(sys.stderr, log)
        try:
            print(
                f"\n=== mini_okapi {' '.join(argv if argv is not None else sys.argv[1:])} ({time.strftime('%Y-%m-%d %H:%M:%S')})"
            )
            Experiment(args, out).run()
        finally:
            sys.stdout, sys.stderr = old
    return 0


class Experiment:
    """One run; ``run`` calls the steps in order and times each one."""

    def __init__(self, args: argparse.Namespace, out: Path) -> None:
        size: Size = group_recipe(SIZES[args.size], args.group)
        self.size = smoke(size) if args.smoke else size
        self.args, self.out = args, out
        self.langs = _sample_langs(args.langs)
        self.group = args.group
        self.device = args.device if args.device != "auto" else _default_device()
        self.timings: list[tuple[str, float]] = []
        self.trained: dict[str, Any] = {}

    def log(self, text: str) -> None:
        print(f"[mini_okapi] {text}", flush=True)

    def step(self, name: str, work: Callable[[], Any]) -> Any:
        self.log(f"--- {name}")
        began = time.perf_counter()
        result = work()
        self.timings.append((name, time.perf_counter() - began))
        self.log(f"{name}: {self.timings[-1][1]:.1f}s")
        return result

    def run(self) -> None:
        self.step("data", self.data)
        self.model = self.step("base model", self.base_model)
        for arm in ("sft", "rm", "ppo", "group", "dpo", "ppo_lang"):
            self.step(f"train {self.arm_name(arm)}", lambda arm=arm: self.train(arm))
        self.step("held-out answers", self.answer)
        self.step("reward-model scores", self.score)
        self.step("okapi items", self.okapi)
        self.step("report", self.report)
        print("\n" + self.closing)

    def arm_name(self, key: str) -> str:
        return self.group if key == "group" else key

    def data(self) -> None:
        from .data import heldout_rankings, write_heldout, write_training_data

        self.dataset, seen = write_training_data(
            self.out / "data", self.langs, self.size.rows, self.args.seed
        )
        self.heldout = [
            r for lang in self.langs for r in heldout_rankings(lang, self.size.heldout, self.args.seed, seen)
        ]
        write_heldout(self.out / "heldout.jsonl", self.heldout)
        tasks = sorted({r.task for r in self.heldout})
        self.log(f"dataset {self.dataset}; {len(self.heldout)} held-out prompts, tasks: {', '.join(tasks)}")

    def base_model(self) -> str:
        model = self.args.model or self.size.model
        if model in (None, "tiny"):
            from okapi_hf.testing import make_tiny_model

            return str(make_tiny_model("llama", self.out / "models" / "tiny-llama", seed=self.args.seed))
        from okapi_hf.models import resolve_model

        return resolve_model(model)

    def train(self, key: str) -> None:
        from .arms import record_base, train

        if "base" not in self.trained:
            self.trained["base"] = record_base(self.out, self.model, ",".join(self.langs))
        start = self.model if key == "sft" else str(self.trained["sft"].path)
        reward_model = str(self.trained["rm"].path) if self.size.stages[key].stage == "rl" else None
        needs = {"sft": (), "rm": ("sft",), "dpo": ("sft",)}.get(key, ("sft", "rm"))
        upstream = [self.trained[k].manifest for k in needs]
        identity = {"size": self.size.name, "model": self.model, "rows": self.size.rows, "upstream": upstream}
        self.trained[key] = train(
            self.arm_name(key),
            self.size.stages[key],
            start=start,
            reward_model=reward_model,
            dataset=self.dataset,
            out=self.out,
            langs=",".join(self.langs),
            seed=self.args.seed,
            identity=identity,
            log=self.log,
        )

    @property
    def arms(self) -> dict[str, Path]:
        return {
            self.arm_name(k): Path(self.trained[k].path) for k in ("base", *ARMS[1:]) if k in self.trained
        }

    def answer(self) -> None:
        from .measure import generate

        self.replies = generate(
            self.arms,
            self.heldout,
            max_new_tokens=self.size.max_new_tokens,
            batch=self.size.gen_batch,
            device=self.device,
        )

    def score(self) -> None:
        from .measure import ranking_rows, reply_rows, reward_scores, token_counter

        rewards, ranked = reward_scores(self.trained["rm"].path, self.heldout, self.replies, self.device)
        self.reply_rows = reply_rows(self.heldout, self.replies, rewards, token_counter(self.model))
        self.ranking_rows = ranking_rows(self.heldout, ranked)
        _write_jsonl(self.out / "results.jsonl", self.reply_rows)
        _write_jsonl(self.out / "rankings.jsonl", self.ranking_rows)

    def okapi(self) -> None:
        from . import okapi_eval

        tasks, self.okapi_note = okapi_eval.plan(self.langs)
        self.log(self.okapi_note)
        shots = self.size.eval_shots
        self.okapi_rows = (
            okapi_eval.evaluate(self.arms, tasks, self.size.eval_docs, shots, self.device, self.log)
            if tasks
            else []
        )
        if tasks:
            docs = ", ".join(f"{bench} {n}" for bench, n in self.size.eval_docs.items())
            self.okapi_note += f"; {shots}-shot ARC; documents per language at most: {docs}"
            _write_jsonl(self.out / "okapi_eval.jsonl", self.okapi_rows)

    def report(self) -> None:
        from . import report
        from .arms import curves, final_eval

        res = report.Results(
            size=self.size.name,
            model=self.model,
            langs=self.langs,
            note=self.size.note,
            replies=self.reply_rows,
            rankings=self.ranking_rows,
            okapi=self.okapi_rows,
            okapi_note=self.okapi_note,
            curves={self.arm_name(k): curves(t.path) for k, t in self.trained.items() if k != "base"},
            timings=self.timings,
            stage_evals={k: final_eval(t.path) for k, t in self.trained.items() if k != "base"},
        )
        summary = report.summarize(res)
        (self.out / "summary.json").write_text(
            json.dumps(report.to_json(summary), indent=2), encoding="utf-8"
        )
        (self.out / "table.md").write_text(report.table(res, summary), encoding="utf-8")
        report.chart(res, summary, self.out / "chart.png")
        self.closing = (
            report.closing_summary(res, summary)
            + f"\n\nOutputs in {self.out}/: table.md, chart.png, results.jsonl, run.log"
        )


def _sample_langs(text: str) -> list[str]:
    """Registry codes of languages the sample generator writes, refused up front otherwise."""
    from okapi_hf.data.sample import SAMPLE_LANGS
    from okapi_hf.languages import resolve_langs

    langs = resolve_langs(text)
    unknown = [lang for lang in langs if lang not in SAMPLE_LANGS]
    if unknown or len(langs) < 1:
        raise SystemExit(f"--langs: the sample tasks exist for {', '.join(SAMPLE_LANGS)}; got {text!r}")
    return langs


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
