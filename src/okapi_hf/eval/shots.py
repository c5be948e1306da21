"""The authors' few-shot stream, reproduced exactly, as an lm-eval task class and sampler.

The Okapi authors' harness (lm-eval 0.3) used one ``random.Random(42)`` per task: it first shuffled
the scored documents, then walked them in that shuffled order and drew each document's shots from
the few-shot pool with the same generator (``rnd.sample(pool, k)``; when the pool is not a training
split, as for MMLU's dev, it drew ``k + 1`` and dropped the scored document if it was among them).
``--limit N`` scored the first N documents of the shuffled order. So a document's shots depend on
its place in the stream, not on the document alone.

lm-eval 0.4 scores documents in file order and draws shots from a per-task sampler seeded with
1234. :class:`OkapiTask` restores the authors' behaviour: its scored split comes in the shuffled
order (so ``--limit`` picks the same documents) and its sampler hands each document the shots of
its position. Pass ``--metadata '{"shots": "lm-eval"}'`` (``okapi-hf eval run --shots lm-eval``) for
lm-eval's own file order and sampler instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from random import Random
from typing import Any

from lm_eval.api.samplers import ContextSampler
from lm_eval.api.task import ConfigurableTask

from okapi_hf.errors import OkapiError
from okapi_hf.eval import SHOT_MODES, SHOTS_KEY

AUTHORS_SEED = 42
POSITION = "okapi_position"  # column: the document's place in the authors' shuffled order


class AuthorsStream:
    """Random(42): shuffle ``n_docs`` positions, then draw ``draw`` pool indices per position, in order."""

    def __init__(self, n_docs: int, seed: int = AUTHORS_SEED) -> None:
        self._rnd = Random(seed)
        self.order = list(range(n_docs))
        self._rnd.shuffle(self.order)  # shuffle only uses the length: same permutation as on the docs
        self._draws: list[list[int]] = []
        self._shape: tuple[int, int] | None = None

    def draws(self, position: int, pool_size: int, draw: int) -> list[int]:
        """Pool indices drawn for the document at ``position`` of the shuffled order."""
        if self._shape is None:
            self._shape = (pool_size, draw)
        elif self._shape != (pool_size, draw):
            raise OkapiError(
                f"one shot stream serves one pool and one shot count, got {self._shape} and {(pool_size, draw)}"
            )
        while len(self._draws) <= position:  # sample only uses len(): indices equal the authors' picks
            self._draws.append(self._rnd.sample(range(pool_size), draw))
        return self._draws[position]


def _same_doc(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The authors' ``x != doc`` test, on what a document is to the model."""
    return (a["query"], list(a["choices"]), a["gold"]) == (b["query"], list(b["choices"]), b["gold"])


class AuthorsSampler(ContextSampler):
    """Hands the scored document (:attr:`scored`, set by :class:`OkapiTask`) its shots in the stream."""

    drop_scored = False  # MMLU: draw k + 1 from dev and drop the scored document

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream: AuthorsStream | None = None
        self.scored: dict[str, Any] | None = None

    def sample(self, n: int, eval_doc=None, df=None, **kwargs) -> Sequence[dict[str, Any]]:
        if self.stream is None or self.scored is None:
            return super().sample(n, eval_doc=eval_doc, df=df, **kwargs)  # lm-eval's own stream
        pool = self.fewshot_docs()
        draw = n + 1 if self.drop_scored else n
        if draw > len(pool):
            raise OkapiError(f"{n} shots asked for, but the few-shot pool has {len(pool)} documents")
        picked = [pool[i] for i in self.stream.draws(self.scored[POSITION], len(pool), draw)]
        if self.drop_scored:
            picked = [doc for doc in picked if not _same_doc(doc, self.scored)]
        return picked[:n]


class MMLUSampler(AuthorsSampler):
    drop_scored = True


class OkapiTask(ConfigurableTask):
    """lm-eval's ConfigurableTask with the authors' document order and shot stream (see module doc)."""

    def __init__(self, config: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if isinstance(config, dict):  # lm-eval passes the YAML's `class:` key along with the rest
            config = {key: value for key, value in config.items() if key != "class"}
        super().__init__(config=config, **kwargs)

    @property
    def authors_shots(self) -> bool:
        mode = (self.config.metadata or {}).get(SHOTS_KEY, "authors")
        if mode not in SHOT_MODES:
            raise OkapiError(f"task metadata {SHOTS_KEY}={mode!r}; expected one of: {', '.join(SHOT_MODES)}")
        return mode == "authors"

    def _authors_order(self, dataset):
        """The scored split in the authors' shuffled order, each row marked with its position."""
        if not self.authors_shots:
            return dataset
        stream = AuthorsStream(len(dataset))
        sampler = getattr(self, "sampler", None)
        if isinstance(sampler, AuthorsSampler):
            sampler.stream = stream
        dataset = dataset.select(stream.order)
        return dataset.add_column(POSITION, list(range(len(dataset))))

    def test_docs(self):
        docs = super().test_docs()
        return self._authors_order(docs) if docs is not None else None

    def validation_docs(self):
        docs = super().validation_docs()
        if docs is None or self.has_test_docs():
            return docs  # validation is scored only when there is no test split
        return self._authors_order(docs)

    def fewshot_context(self, doc, num_fewshot, *args, **kwargs):
        sampler = getattr(self, "sampler", None)
        if isinstance(sampler, AuthorsSampler):
            sampler.scored = doc if self.authors_shots else None
        return super().fewshot_context(doc, num_fewshot, *args, **kwargs)
