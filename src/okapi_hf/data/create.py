"""The data-creation steps as functions over files, in the release layout ``data build`` reads.

generate -> ``multilingual-alpaca-52k/en.jsonl``; translate -> ``<subset folder>/<lang>.jsonl``;
respond -> ``responses/<lang>.jsonl``; rank -> ``multilingual-ranking-data-42k/<lang>.jsonl``;
taco -> ``taco/<lang>.jsonl``. So ``okapi-hf data build --raw-dir OUT`` takes the results unchanged.

``max_tokens``, ``temperature`` and ``top_p`` override what each step picks for its requests (None
keeps the step's choice); ``timeout`` bounds one request attempt to an endpoint. Ctrl-C stops a step
within a second or so, its finished rows kept, with :class:`~okapi_hf.data.runner.StepInterrupted`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from okapi_hf.data.backends import make_backend
from okapi_hf.data.llm import LLMClient, Price
from okapi_hf.data.llm_types import Sampling
from okapi_hf.data.runner import (
    RunReport,
    parse_shard,
    read_rows,
    run_rows,
    run_step,
    shard_path,
    take_shard,
    write_rows,
)
from okapi_hf.data.schema import get_subset
from okapi_hf.errors import ConfigError, DataError
from okapi_hf.languages import get_language, resolve_langs

CACHE_NAME = ".okapi_llm_cache.sqlite"


def make_client(
    backend: str,
    out: str | Path,
    *,
    cache: str | Path | None = None,
    concurrency: int = 16,
    price: str | None = None,
    timeout: float = 120.0,
) -> LLMClient:
    """A client for ``backend`` whose request cache lives in ``out`` unless ``cache`` says otherwise.

    ``timeout`` is the seconds one attempt at an endpoint may take before it is retried.
    """
    Path(out).mkdir(parents=True, exist_ok=True)
    return LLMClient(
        make_backend(backend),
        concurrency=concurrency,
        cache=Path(cache) if cache else Path(out) / CACHE_NAME,
        price=parse_price(price),
        timeout=timeout,
    )


def parse_price(spec: str | None) -> Price | None:
    """``"0.15,0.60"``: USD per million input and output tokens."""
    if not spec:
        return None
    try:
        given, taken = (float(x) for x in spec.split(","))
    except ValueError:
        raise DataError(
            f"--price {spec!r}: expected INPUT,OUTPUT in USD per million tokens, e.g. 0.15,0.60"
        ) from None
    return Price(given, taken)


def _output(out: str | Path, folder: str, lang: str, shard: str | None) -> Path:
    return shard_path(Path(out) / folder / f"{lang}.jsonl", parse_shard(shard))


def _rows(input: str | Path, shard: str | None) -> list[dict[str, Any]]:
    return take_shard(read_rows(input), parse_shard(shard))


def _lang_of(rows: list[dict[str, Any]], lang: str | None, input: str | Path) -> str:
    """The language to work in, set on every row: ``lang`` if given, else the one the rows' ``lang`` names.

    A row whose own ``lang`` differs from ``--lang`` is an error, not relabelled.
    """
    found = {row.get("lang") for row in rows}
    if lang:
        code = get_language(lang).code
        other = sorted(str(c) for c in found - {None, code})
        if other:
            raise DataError(
                f"{input}: rows carry language(s) {other}, not {code}; split the file or drop --lang"
            )
    elif len(found) != 1 or None in found:
        raise DataError(f"{input}: rows carry languages {sorted(map(str, found))}; pass --lang")
    else:
        code = get_language(found.pop()).code
    for row in rows:
        row["lang"] = code
    return code


def _settings(prompts_dir: Path | None, **values: Any) -> dict[str, Any]:
    """What a step was asked to do: when it changes, earlier rejections are tried again."""
    prompts = {}
    if prompts_dir is not None:
        prompts = {p.name: p.read_text(encoding="utf-8") for p in sorted(Path(prompts_dir).glob("*.md"))}
    return {**values, "prompts": prompts}


def _recorded(sampling: Sampling, max_tokens: int) -> dict[str, Any]:
    """The sampling a step's settings record, ``max_tokens`` always (respond and rank recorded it
    before it could be overridden, so runs that override nothing keep their settings)."""
    return {**sampling.given(), "max_tokens": sampling.max_tokens or max_tokens}


def _run(
    rows: list[dict[str, Any]],
    work: Any,
    out: Path,
    step: str,
    clients: list[LLMClient],
    progress: bool,
    settings: dict[str, Any],
) -> RunReport:
    """Run the step in one event loop and close its clients there (their connections belong to it).

    Ctrl-C raises StepInterrupted, whose message says how many rows are done.
    """
    report = RunReport(step=step, out=out, total=len(rows))
    main = run_rows(
        rows, work, out, step=step, client=clients[0], settings=settings, progress=progress, report=report
    )
    return run_step(main, clients, report.interruption)


def generate(
    out: str | Path,
    num: int,
    backend: str,
    *,
    seeds: str | Path | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    prompts_dir: Path | None = None,
    progress: bool = True,
    **client_kw: Any,
) -> Any:
    """Self-Instruct English tasks from ``seeds`` (default: the shipped seed tasks).

    The tasks are written when all are made; an interrupted run writes none, but every answer it
    received is cached, so running it again sends only the requests still missing.
    """
    from okapi_hf.data.generate import GenerateReport, generate_tasks

    seed_file = Path(seeds) if seeds else Path(__file__).parent / "prompts" / "seed_tasks.jsonl"
    seed_rows = read_rows(seed_file)
    sampling = Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    client = make_client(backend, out, **client_kw)
    target = Path(out) / get_subset("sft").release_folder / "en.jsonl"
    live = GenerateReport()
    main = generate_tasks(
        seed_rows, client, num, prompts_dir=prompts_dir, progress=progress, sampling=sampling, report=live
    )

    def interrupted() -> str:
        return (
            f"generate: interrupted with {live.kept} of {num} task(s) kept, not yet written to {target}; "
            f"the {client.usage.requests} answer(s) received are cached: run the same command again to resume"
        )

    tasks, report = run_step(main, [client], interrupted)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_rows(target, [{"id": f"en-gen-{n}", "lang": "en", **task} for n, task in enumerate(tasks)])
    report.out, report.usage = target, client.usage.summary()
    return report


def translate(
    input: str | Path,
    out: str | Path,
    langs: str,
    backend: str,
    *,
    subset: str = "sft",
    shard: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    prompts_dir: Path | None = None,
    progress: bool = True,
    **client_kw: Any,
) -> list[RunReport]:
    """Each row's instruction, input and output in every language of ``langs``."""
    from okapi_hf.data.translate import make_translate

    folder = get_subset(subset).release_folder
    rows = _rows(input, shard)
    sampling = Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    reports = []
    for lang in resolve_langs(langs):
        client = make_client(backend, out, **client_kw)
        work = make_translate(lang, client, prompts_dir=prompts_dir, sampling=sampling)
        settings = _settings(prompts_dir, backend=backend, **sampling.given())
        target = _output(out, folder, lang, shard)
        reports.append(_run(rows, work, target, f"translate {lang}", [client], progress, settings))
    return reports


def respond(
    input: str | Path,
    out: str | Path,
    backends: Sequence[str],
    *,
    lang: str | None = None,
    samples: int = 1,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    check_language: bool = True,
    shard: str | None = None,
    progress: bool = True,
    **client_kw: Any,
) -> RunReport:
    """K responses per row: every backend, ``samples`` times each."""
    from okapi_hf.data.respond import MAX_TOKENS, make_respond

    if len(backends) * samples < 2:
        raise ConfigError(
            f"respond makes {len(backends) * samples} response(s) per instruction; ranking needs at least 2: "
            "pass --samples 2 or more, or several --backend specs"
        )
    rows = _rows(input, shard)
    lang = _lang_of(rows, lang, input)
    sampling = Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    clients = [make_client(spec, out, **client_kw) for spec in backends]
    work = make_respond(clients, samples=samples, sampling=sampling, check_language=check_language)
    settings = _settings(
        None,
        backends=list(backends),
        samples=samples,
        check=check_language,
        **_recorded(sampling, MAX_TOKENS),
    )
    target = _output(out, "responses", lang, shard)
    report = _run(rows, work, target, f"respond {lang}", clients, progress, settings)
    report.notes += [f"responses left out ({n}): {reason}" for reason, n in work.dropped.most_common()]
    return report


def rank(
    input: str | Path,
    out: str | Path,
    backend: str,
    *,
    lang: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    shard: str | None = None,
    prompts_dir: Path | None = None,
    progress: bool = True,
    **client_kw: Any,
) -> RunReport:
    """Each row's responses ordered best first by the judge: ranking-subset rows."""
    from okapi_hf.data.rank import MAX_TOKENS, make_rank

    rows = _rows(input, shard)
    lang = _lang_of(rows, lang, input)
    sampling = Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    client = make_client(backend, out, **client_kw)
    work = make_rank(client, prompts_dir=prompts_dir, sampling=sampling)
    target = _output(out, get_subset("ranking").release_folder, lang, shard)
    settings = _settings(
        prompts_dir,
        backend=backend,
        **_recorded(sampling, MAX_TOKENS),
    )
    return _run(rows, work, target, f"rank {lang}", [client], progress, settings)


def taco(
    input: str | Path,
    out: str | Path,
    backend: str,
    *,
    lang: str | None = None,
    english: str | Path | None = None,
    answer: str = "row",
    shard: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    prompts_dir: Path | None = None,
    progress: bool = True,
    **client_kw: Any,
) -> RunReport:
    """TaCo rows (instruction in ``lang``, then English instruction, English answer, answer in ``lang``)."""
    from okapi_hf.data.taco import make_taco

    rows = _rows(input, shard)
    lang = _lang_of(rows, lang, input)
    client = make_client(backend, out, **client_kw)
    english_rows = read_rows(english) if english else None
    sampling = Sampling(temperature=temperature, top_p=top_p, max_tokens=max_tokens)
    work = make_taco(
        lang, client, english_rows=english_rows, prompts_dir=prompts_dir, answer=answer, sampling=sampling
    )
    settings = _settings(
        prompts_dir, backend=backend, english=str(english), answer=answer, **sampling.given()
    )
    return _run(rows, work, _output(out, "taco", lang, shard), f"taco {lang}", [client], progress, settings)
