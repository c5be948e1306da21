"""The data-creation steps as functions over files, in the release layout ``data build`` reads.

generate -> ``multilingual-alpaca-52k/en.jsonl``; translate -> ``<subset folder>/<lang>.jsonl``;
respond -> ``responses/<lang>.jsonl``; rank -> ``multilingual-ranking-data-42k/<lang>.jsonl``;
taco -> ``taco/<lang>.jsonl``. So ``okapi-hf data build --raw-dir OUT`` takes the results unchanged.

``max_tokens``, ``temperature`` and ``top_p`` override what each step picks for its requests (None
keeps the step's choice); ``timeout`` bounds one request attempt to an endpoint. Ctrl-C stops a step
within a second or so, its finished rows kept, with :class:`~okapi_hf.create.runner.StepInterrupted`.

Every option is checked before the input is read, a folder made or a request sent, and an error
names the option (``--backend``, ``--concurrency``, ``--price``...). A step whose output the next
one cannot use (no row kept, or rows the endpoint refuses whatever the retries) raises
:class:`~okapi_hf.create.runner.StepFailed`: one line saying why, with the run reports attached.
"""

from __future__ import annotations

import errno
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from okapi_hf.create.backends import make_backend, public_spec
from okapi_hf.create.llm import LLMClient, Price
from okapi_hf.create.llm_types import Sampling, StorageFullError
from okapi_hf.create.runner import (
    RunReport,
    StepFailed,
    check_outcome,
    parse_shard,
    read_rows,
    run_rows_sync,
    run_step,
    shard_path,
    take_shard,
    write_rows,
)
from okapi_hf.data.schema import get_subset
from okapi_hf.errors import ConfigError, DataError
from okapi_hf.fsutil import locked
from okapi_hf.languages import get_language, resolve_langs

if TYPE_CHECKING:
    from typing_extensions import Unpack

CACHE_NAME = ".okapi_llm_cache.sqlite"


def make_client(
    backend: str,
    out: str | Path,
    *,
    cache: str | Path | None = None,
    concurrency: int = 16,
    price: str | None = None,
    timeout: float = 120.0,
    option: str = "--backend",
) -> LLMClient:
    """A client for ``backend`` whose request cache lives in ``out`` unless ``cache`` says otherwise.

    ``timeout`` is the seconds one attempt at an endpoint may take before it is retried. Every value
    is checked before anything is created on disk or sent: an error names the option at fault.
    """
    check_concurrency(concurrency)
    parsed_price = parse_price(price)
    made = make_backend(backend, option=option)
    make_folder(out, "--out")
    return LLMClient(
        made,
        concurrency=concurrency,
        cache=Path(cache) if cache else Path(out) / CACHE_NAME,
        price=parsed_price,
        timeout=timeout,
    )


def _check_options(
    backends: Sequence[str],
    *,
    concurrency: int = 16,
    price: str | None = None,
    cache: str | Path | None = None,
    **_: Any,
) -> None:
    """The client options of a step, checked before its input is read or any folder is made."""
    check_concurrency(concurrency)
    parse_price(price)
    check_cache_path(cache)
    for spec in backends:
        make_backend(spec)


def check_cache_path(cache: str | Path | None) -> None:
    """``--cache``: a file's path (it may not exist yet), not a folder and not under a file."""
    if not cache:
        return
    path = Path(cache)
    if path.is_dir():
        raise ConfigError(f"--cache {path} is a folder; give the path of a file (an SQLite database)")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(f"--cache {path}: {blocker} is a file, not a folder; give another cache path")


def check_concurrency(concurrency: Any) -> None:
    """``--concurrency``: requests in flight at once, 1 or more."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(
            f"--concurrency {concurrency}: expected a whole number of 1 or more (requests at once)"
        )


def make_folder(folder: str | Path, option: str) -> Path:
    """Create an output folder; a file in the way is named, not a traceback."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [folder, *folder.parents] if p.exists() and not p.is_dir()), folder)
        raise ConfigError(
            f"{option} {folder}: {blocker} is a file; expected a folder (or a new path)"
        ) from None
    return folder


def parse_price(spec: str | None) -> Price | None:
    """``"0.15,0.60"``: USD per million input and output tokens, each a finite number of 0 or more."""
    if not spec:
        return None
    expected = f"--price {spec!r}: expected INPUT,OUTPUT in USD per million tokens, e.g. 0.15,0.60"
    try:
        given, taken = (float(x) for x in spec.split(","))
    except ValueError:
        raise DataError(expected) from None
    if not all(math.isfinite(x) and x >= 0 for x in (given, taken)):
        raise DataError(f"{expected}; both numbers must be 0 or more")
    return Price(given, taken)


def check_prompts_dir(prompts_dir: str | Path | None) -> None:
    """``--prompts``: a folder holding at least one of the shipped prompts' files (else a typo would
    silently run the shipped prompts)."""
    if prompts_dir is None:
        return
    from okapi_hf.create.prompts import prompt_names

    folder = Path(prompts_dir)
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise ConfigError(f"--prompts {folder} {what}; expected a folder of prompt files (NAME.md)")
    names = set(prompt_names())
    if not any(p.stem in names for p in folder.glob("*.md")):
        raise ConfigError(
            f"--prompts {folder} holds none of the prompt files; expected some of: "
            + ", ".join(f"{n}.md" for n in sorted(names))
        )


def _output(out: str | Path, folder: str, lang: str, shard: str | None) -> Path:
    return shard_path(Path(out) / folder / f"{lang}.jsonl", parse_shard(shard))


def _rows(input: str | Path, shard: str | None) -> list[dict[str, Any]]:
    """The input's rows of this shard; an input without rows is an error before any work."""
    spec = parse_shard(shard)
    rows = read_rows(input)
    if not rows:
        raise DataError(f"--input {input} holds no rows; expected JSON/JSONL objects to work on")
    return take_shard(rows, spec)


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


class StepOptions(TypedDict, total=False):
    """The options every step takes besides its own, written once: prompts, sampling, progress, the client's.

    ``prompts_dir`` holds prompt files that replace the shipped ones (respond has none and refuses
    it); ``max_tokens``, ``temperature`` and ``top_p`` override what the step picks for its requests
    (None keeps its choice); ``progress`` shows a bar; ``cache``, ``concurrency``, ``price`` and
    ``timeout`` go to :func:`make_client`.
    """

    prompts_dir: Path | None

    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    progress: bool
    cache: str | Path | None
    concurrency: int
    price: str | None
    timeout: float


class RowOptions(StepOptions, total=False):
    """:class:`StepOptions` plus the two that pick a one-language step's rows: ``lang`` (default: the
    one the rows name) and ``shard`` (``"i/n"``: the i-th of n slices, for several machines)."""

    lang: str | None
    shard: str | None


@dataclass
class _Begun:
    """A step past its checks: sampling overrides, progress bar, the client's options; a step over
    rows in one language also has those rows (this shard's) and that language."""

    sampling: Sampling
    progress: bool
    client_kw: dict[str, Any]
    prompts_dir: Path | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    lang: str = ""
    shard: str | None = None


def _begin(
    options: Mapping[str, Any],
    backends: Sequence[str],
    *,
    input: str | Path | None = None,
) -> _Begun:
    """Every check a step makes before it reads its input or makes a folder, then (given ``input``)
    its rows (the ``shard`` of :class:`RowOptions`) and their language."""
    client_kw = dict(options)
    lang = shard = None
    if input is not None:  # a step over rows: RowOptions
        lang, shard = client_kw.pop("lang", None), client_kw.pop("shard", None)
    given = {name: client_kw.pop(name, None) for name in ("temperature", "top_p", "max_tokens")}
    progress = client_kw.pop("progress", True)
    prompts_dir = client_kw.pop("prompts_dir", None)
    check_prompts_dir(prompts_dir)
    _check_options(backends, **client_kw)
    begun = _Begun(Sampling(**given), progress, client_kw, Path(prompts_dir) if prompts_dir else None)
    if input is not None:
        begun.rows = _rows(input, shard)
        begun.lang = _lang_of(begun.rows, lang, input)
        begun.shard = shard
    return begun


def _run(
    begun: _Begun, work: Any, out: Path, step: str, clients: list[LLMClient], settings: dict[str, Any]
) -> RunReport:
    """Run the step over its rows (Ctrl-C raises StepInterrupted, saying how many rows are done)."""
    return run_rows_sync(
        begun.rows, work, out, step=step, clients=clients, settings=settings, progress=begun.progress
    )


def generate(
    out: str | Path,
    num: int,
    backend: str,
    *,
    seeds: str | Path | None = None,
    **options: Unpack[StepOptions],
) -> Any:
    """Self-Instruct English tasks from ``seeds`` (default: the shipped seed tasks).

    The tasks are written when all are made; an interrupted run writes none, but every answer it
    received is cached, so running it again sends only the requests still missing.
    """
    from okapi_hf.create.generate import GenerateReport, generate_tasks

    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ConfigError(f"--num {num}: expected how many tasks to make, a whole number of 1 or more")
    begun = _begin(options, [backend])
    seed_file = Path(seeds) if seeds else Path(__file__).parent / "prompts" / "seed_tasks.jsonl"
    seed_rows = read_rows(seed_file)
    if not seed_rows:
        raise DataError(f"--seeds {seed_file} holds no tasks; expected rows with instruction, input, output")
    client = make_client(backend, out, **begun.client_kw)
    target = Path(out) / get_subset("sft").release_folder / "en.jsonl"
    make_folder(target.parent, "--out")
    live = GenerateReport()

    def interrupted() -> str:
        return (
            f"generate: interrupted with {live.kept} of {num} task(s) kept, not yet written to {target}; "
            f"the {client.usage.requests} answer(s) received are cached: run the same command again to resume"
        )

    try:
        with locked(target, what=f"the output {target}"):
            main = generate_tasks(
                seed_rows,
                client,
                num,
                prompts_dir=begun.prompts_dir,
                progress=begun.progress,
                sampling=begun.sampling,
                report=live,
            )
            tasks, report = run_step(main, [client], interrupted)
            report.out, report.usage = target, client.usage.summary()
            if not tasks:  # an earlier run's tasks stay; the next step must not start on an empty file
                dropped = "; ".join(f"{n}: {reason}" for reason, n in report.dropped.most_common(3))
                raise StepFailed(
                    f"generate: no task kept of {report.parsed} parsed from {report.requests} answer(s)"
                    + (f" ({dropped})" if dropped else " (the answers held no '### Task N' blocks)")
                    + f"; nothing written to {target}: check the model and the prompt first",
                    [report],
                )
            write_rows(target, [{"id": f"en-gen-{n}", "lang": "en", **task} for n, task in enumerate(tasks)])
    except OSError as e:
        if isinstance(e, StorageFullError) or e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise StorageFullError(
            f"generate: no space left on the disk of {target}: free some space and run the same command "
            f"again; the file is as it was before, and the {client.usage.requests} answer(s) received are "
            "cached, so nothing is paid for twice"
        ) from e
    return report


def translate(
    input: str | Path,
    out: str | Path,
    langs: str,
    backend: str,
    *,
    subset: str = "sft",
    shard: str | None = None,
    **options: Unpack[StepOptions],
) -> list[RunReport]:
    """Each row's instruction, input and output in every language of ``langs``."""
    from okapi_hf.create.translate import make_translate

    folder = get_subset(subset).release_folder
    begun = _begin(options, [backend])
    targets = resolve_langs(langs)
    begun.rows = _rows(input, shard)
    reports = []
    for lang in targets:
        client = make_client(backend, out, **begun.client_kw)
        work = make_translate(lang, client, prompts_dir=begun.prompts_dir, sampling=begun.sampling)
        settings = _settings(begun.prompts_dir, backend=public_spec(backend), **begun.sampling.given())
        target = _output(out, folder, lang, shard)
        reports.append(_run(begun, work, target, f"translate {lang}", [client], settings))
    check_outcome(reports)
    return reports


def respond(
    input: str | Path,
    out: str | Path,
    backends: Sequence[str],
    *,
    samples: int = 1,
    check_language: bool = True,
    **options: Unpack[RowOptions],
) -> RunReport:
    """K responses per row: every backend, ``samples`` times each."""
    from okapi_hf.create.respond import MAX_TOKENS, make_respond

    backends = [backends] if isinstance(backends, str) else list(backends)
    if not backends or any(not str(spec).strip() for spec in backends):
        raise ConfigError(
            f"--backend {','.join(public_spec(str(b)) for b in backends)!r} lists an empty spec (two commas "
            "in a row, or one at an end); expected comma-separated specs such as openai:MODEL@URL"
        )
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"--samples {samples}: expected responses per model, a whole number of 1 or more")
    if len(backends) * samples < 2:
        raise ConfigError(
            f"respond makes {len(backends) * samples} response(s) per instruction; ranking needs at least 2: "
            "pass --samples 2 or more, or several --backend specs"
        )
    if options.get("prompts_dir") is not None:
        raise ConfigError(
            "respond sends each instruction as it is, with no prompt of its own: drop prompts_dir"
        )
    begun = _begin(options, backends, input=input)
    clients = [make_client(spec, out, **begun.client_kw) for spec in backends]
    work = make_respond(clients, samples=samples, sampling=begun.sampling, check_language=check_language)
    settings = _settings(
        None,
        backends=[public_spec(spec) for spec in backends],
        samples=samples,
        check=check_language,
        **_recorded(begun.sampling, MAX_TOKENS),
    )
    target = _output(out, "responses", begun.lang, begun.shard)
    report = _run(begun, work, target, f"respond {begun.lang}", clients, settings)
    report.notes += [f"responses left out ({n}): {reason}" for reason, n in work.dropped.most_common()]
    check_outcome([report])
    return report


def rank(
    input: str | Path,
    out: str | Path,
    backend: str,
    **options: Unpack[RowOptions],
) -> RunReport:
    """Each row's responses ordered best first by the judge: ranking-subset rows."""
    from okapi_hf.create.rank import MAX_TOKENS, make_rank

    begun = _begin(options, [backend], input=input)
    client = make_client(backend, out, **begun.client_kw)
    work = make_rank(client, prompts_dir=begun.prompts_dir, sampling=begun.sampling)
    settings = _settings(
        begun.prompts_dir, backend=public_spec(backend), **_recorded(begun.sampling, MAX_TOKENS)
    )
    target = _output(out, get_subset("ranking").release_folder, begun.lang, begun.shard)
    report = _run(begun, work, target, f"rank {begun.lang}", [client], settings)
    check_outcome([report])
    return report


def taco(
    input: str | Path,
    out: str | Path,
    backend: str,
    *,
    english: str | Path | None = None,
    answer: str = "row",
    **options: Unpack[RowOptions],
) -> RunReport:
    """TaCo rows (instruction in ``lang``, then English instruction, English answer, answer in ``lang``)."""
    from okapi_hf.create.taco import make_taco

    begun = _begin(options, [backend], input=input)
    english_rows = read_rows(english) if english else None
    client = make_client(backend, out, **begun.client_kw)
    work = make_taco(
        begun.lang,
        client,
        english_rows=english_rows,
        prompts_dir=begun.prompts_dir,
        answer=answer,
        sampling=begun.sampling,
    )
    given = begun.sampling.given()
    settings = _settings(
        begun.prompts_dir, backend=public_spec(backend), english=str(english), answer=answer, **given
    )
    target = _output(out, "taco", begun.lang, begun.shard)
    report = _run(begun, work, target, f"taco {begun.lang}", [client], settings)
    check_outcome([report])
    return report
