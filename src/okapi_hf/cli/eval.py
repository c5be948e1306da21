"""`okapi-hf eval ...`: Okapi's benchmarks through lm-eval, and generative evaluation with an LLM judge."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from okapi_hf.cli.types import (
    DEPRECATED_USED,
    LANGS_HELP,
    LazyDefault,
    add_choice,
    add_deprecated,
    add_parser,
    positive_int,
)
from okapi_hf.errors import OkapiError


def _eval_tasks_path(args: argparse.Namespace) -> None:
    from okapi_hf.eval import tasks_path

    print(tasks_path())


def _eval_run(args: argparse.Namespace) -> None:
    from okapi_hf.eval.harness import run_eval

    limit = int(args.limit) if args.limit is not None and args.limit >= 1 else args.limit
    run_eval(
        args.backend,
        args.model_args,
        args.langs,
        args.benchmarks,
        args.out,
        limit=limit,
        batch_size=args.batch_size,
        device=args.device,
        shots=args.shots,
        model_name=args.model_name or args.model,
    )
    print(f"wrote results.json, results.md, results.png and model_index.yaml to {args.out}")


def _eval_run_prepare(args: argparse.Namespace) -> None:
    """``--backend``, ``--model`` and ``--model-args`` into lm-eval's backend and model args.

    ``--model`` becomes ``pretrained=``. The old spelling, ``--model hf`` naming the backend with the model
    in ``--model_args pretrained=...``, still works for one release (main() prints the deprecation line).
    """
    extra = [part for part in (args.model_args or "").split(",") if part.strip()]
    named = any(part.strip().startswith("pretrained=") for part in extra)
    if args.model is not None and named:
        if not _is_backend(args.model):
            raise OkapiError(
                f"--model {args.model} and --model-args pretrained=... both name the model: give it once, "
                "with --model (the lm-eval backend is --backend)"
            )
        DEPRECATED_USED[f"--model {args.model}"] = f"--backend {args.model}"  # the old meaning of --model
        args.backend, args.model = args.model, None
    elif args.model is None and not named:
        raise OkapiError(
            "name the model to evaluate: --model PATH (a folder, preset, .gguf, Hub id or adapter)"
        )
    elif args.model is not None:
        extra.insert(0, f"pretrained={args.model}")
    args.model_args = ",".join(extra)


def _is_backend(name: str) -> bool:
    """True for an lm-eval model backend name (``okapi-hf``, ``hf``, ``vllm``...) that is no local path."""
    if Path(name).exists():
        return False
    if name == "okapi-hf":
        return True
    import lm_eval.models  # noqa: F401 (fills the registry)
    from lm_eval.api.registry import MODEL_REGISTRY

    return name in MODEL_REGISTRY


def _eval_generate(args: argparse.Namespace) -> None:
    from okapi_hf.eval.answer import answer_questions, load_questions
    from okapi_hf.fsutil import locked

    questions = load_questions(args.questions, args.langs, limit=args.limit)
    if bool(args.model) == bool(args.backend):
        raise OkapiError(
            "give exactly one of --model (a local model, chat pipeline) or --backend (an endpoint)"
        )
    options = ("model", "backend", "batch_size", "gpu", "concurrency", "max_new_tokens")
    with locked(args.out, what=f"the answers folder {args.out}"):
        n = answer_questions(questions, args.out, **{name: getattr(args, name) for name in options})
    print(f"{n} new answer(s) to {len(questions)} {args.bench} question(s) in {args.out}")


def _eval_judge(args: argparse.Namespace) -> None:
    from okapi_hf.create.runner import StepFailed, output_files
    from okapi_hf.eval.judge import judge_spec

    if args.judge_backend:
        backend = args.judge_backend
    elif args.judge_model:
        backend = judge_spec(args.judge_endpoint, args.judge_model)
    else:
        raise OkapiError(
            "name the judge: --judge-backend SPEC, or --judge-model NAME (with --judge-endpoint URL)"
        )
    files = output_files(args.answers)
    if not files:
        raise OkapiError(f"no <lang>.jsonl answers in {args.answers}: run `okapi-hf eval generate` first")
    failed = 0
    for path in files:
        try:
            report = _judge_one(args, path, backend)
        except StepFailed as e:  # the judge cannot go on (a refused key, a prompt too long): say why
            for failed_report in e.reports:
                print(failed_report.summary())
            raise
        print(report.summary())
        failed += sum(report.failed.values())
    if failed:
        raise OkapiError(f"{failed} judgement(s) failed (the endpoint gave up); run the same command again")


def _judge_one(args: argparse.Namespace, path: Path, backend: str) -> Any:
    from okapi_hf.eval.judge import judge_answers

    baseline = Path(args.baseline) / path.name if args.baseline else None
    return judge_answers(
        path,
        Path(args.out) / path.name,
        backend,
        mode=args.mode,
        baseline_path=baseline,
        references_path=args.references,
        cache=args.cache,
        concurrency=args.concurrency,
        prompts_dir=args.prompts_dir,
        max_tokens=args.max_tokens,
    )


def _judge_tokens() -> int:
    from okapi_hf.eval.judge import DEFAULT_MAX_TOKENS

    return DEFAULT_MAX_TOKENS


def _eval_report(args: argparse.Namespace) -> None:
    from okapi_hf.eval.judge_report import ALL, write_report

    rows = write_report(args.judgements, args.answers, args.out, model_name=args.model_name)
    for r in rows:
        if r.category == ALL:
            score = "-" if r.score is None else f"{r.score:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
            fidelity = "-" if r.fidelity is None else f"{r.fidelity:.2f}"
            print(f"{r.model} {r.lang}: score {score}, {r.unparsed} unparsed, fidelity {fidelity}")
    print(f"wrote report.md, report.png, report.json and model_index.yaml to {args.out}")


def add_eval_commands(commands: argparse._SubParsersAction) -> None:
    """The `eval` command group."""
    from okapi_hf.eval import BENCHMARKS, SHOT_MODES, VARIANTS

    evaluation = add_parser(
        commands,
        "eval",
        help="evaluate: Okapi benchmarks through lm-eval, and generative answers graded by an LLM judge",
    ).add_subparsers(dest="eval_command", required=True, metavar="STEP", help="which evaluation step")
    p = add_parser(evaluation, "tasks-path", help="print the folder to pass to lm_eval --include_path")
    p.set_defaults(func=_eval_tasks_path)

    p = add_parser(
        evaluation, "run", help="run lm-eval in-process and write a table, a chart and a model-index"
    )
    p.add_argument(
        "--model",
        metavar="PATH",
        help="the model to evaluate (required): a folder, a preset, a .gguf file, a Hub id or a LoRA adapter",
    )
    p.add_argument(
        "--model-name",
        metavar="NAME",
        help="the model's name in results.md, model_index.yaml and the leaderboard (default: --model)",
    )
    p.add_argument(
        "--backend",
        default="okapi-hf",
        metavar="NAME",
        help="lm-eval model backend: okapi-hf (lm-eval's hf with a fast multiple-choice scorer), hf, vllm, ...",
    )
    p.add_argument(
        "--model-args",
        metavar="K=V,...",
        help="more lm-eval model args, e.g. dtype=float32,max_length=2048 (default: none)",
    )
    p.add_argument("--langs", required=True, help=LANGS_HELP)
    names = ", ".join([*BENCHMARKS, *VARIANTS])
    p.add_argument(
        "--benchmarks",
        default="all",
        metavar="LIST",
        help=f"comma-separated, of: {names}, or all (= {', '.join(BENCHMARKS)}); arc_val scores ARC on "
        "validation, the split of the authors' reference scores; mmlu_val scores MMLU on its val split",
    )
    p.add_argument("--out", default="eval_results", metavar="DIR", help="folder for the results")
    p.add_argument(
        "--limit",
        type=float,
        metavar="N",
        help="documents per task (a fraction if < 1), for smoke tests (default: all)",
    )
    p.add_argument("--batch-size", default="1", metavar="N", help="lm-eval batch size: a number, or auto")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda if there is one, else cpu)")
    shots_help = "few-shot stream: the authors' (Random(42) document order and draws) or lm-eval's sampler"
    add_choice(p, "--shots", SHOT_MODES, "authors", shots_help)
    for old, new in (
        ("--model_args", "--model-args"),
        ("--batch_size", "--batch-size"),
        ("--output", "--out"),
    ):
        add_deprecated(p, old, new)
    p.set_defaults(func=_eval_run, prepare=_eval_run_prepare)

    p = add_parser(evaluation, "generate", help="answer a question set (multilingual Vicuna) for a judge")
    add_choice(p, "--bench", ["vicuna"], "vicuna", "question set the answers are for")
    p.add_argument(
        "--questions", required=True, help="folder of <lang>.jsonl {question_id, category, turns, lang}"
    )
    p.add_argument("--langs", required=True, help="comma-separated codes")
    p.add_argument(
        "--model", help="a local model folder, LoRA adapter or Hub id (answers with the chat pipeline)"
    )
    p.add_argument("--backend", help="or an endpoint: openai:MODEL@URL")
    p.add_argument("--out", required=True, help="answers folder (<lang>.jsonl)")
    p.add_argument(
        "--batch-size", type=positive_int, default=8, help="prompts per generate call (local model)"
    )
    p.add_argument("--max-new-tokens", type=positive_int, default=512, help="longest answer, in tokens")
    p.add_argument(
        "--limit", type=positive_int, help="answer only the first N questions of each language (a smoke run)"
    )
    p.add_argument("--concurrency", type=positive_int, default=16, help="requests in flight (endpoint only)")
    p.add_argument("--gpu", action="store_true", help="run the local model on CUDA in bfloat16")
    p.set_defaults(func=_eval_generate)

    p = add_parser(evaluation, "judge", help="grade answers with an LLM judge (1-10, or pairwise A vs B)")
    p.add_argument("--answers", required=True, help="folder written by `eval generate`")
    p.add_argument("--out", required=True, help="judgements folder (<lang>.jsonl)")
    p.add_argument("--judge-endpoint", help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--judge-model", help="the judge's model name at that endpoint")
    p.add_argument("--judge-backend", help="or a backend spec: openai:MODEL@URL, local:PATH")
    mode_help = "single: a 1-10 score per answer; pairwise: A vs B against --baseline"
    add_choice(p, "--mode", ["single", "pairwise"], "single", mode_help)
    p.add_argument("--baseline", help="(pairwise) answers folder of the model to compare against")
    p.add_argument("--references", help="JSONL {question_id, reference} for math and coding questions")
    p.add_argument("--concurrency", type=positive_int, default=16, help="requests in flight")
    p.add_argument("--cache", help="request cache file (default: next to the judgements)")
    p.add_argument(
        "--max-tokens",
        type=positive_int,
        action=LazyDefault,
        load=_judge_tokens,
        help="longest judgement, in tokens",
    )
    p.add_argument(
        "--prompts",
        dest="prompts_dir",
        type=Path,
        help="folder of judge prompts replacing the shipped ones (default: the shipped ones)",
    )
    p.set_defaults(func=_eval_judge)

    p = add_parser(
        evaluation, "report", help="scores per language and category with intervals, fidelity, chart"
    )
    p.add_argument("--judgements", required=True, help="folder written by `eval judge`")
    p.add_argument("--answers", required=True, help="folder written by `eval generate`")
    p.add_argument(
        "--out", required=True, help="folder for report.md, report.png, report.json, model_index.yaml"
    )
    p.add_argument("--model-name", help="name in the model-index (default: the answers' model)")
    p.set_defaults(func=_eval_report)
