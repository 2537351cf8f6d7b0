"""Contrastive (InfoNCE) training of a retrieval adapter on the stored relevance judgements.

Each judged query gives positives (results judged relevant), hard negatives (results of the same query
judged not relevant), in-batch negatives (the other queries' results) and a few random stored vectors. The
adapter (`serving.models.embedding_adapter`) maps the embedder's outputs; training reads the stored vectors
back from the index and embeds only the query texts, so no image is embedded again. Recall@k before and
after is measured by real searches of the held-out queries over the whole index.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mmdemo import config
from mmdemo.data import Store
from mmdemo.data.labels import Label
from mmdemo.finetune.data import DEFAULT_SELECTION, LabelSelection, origin, relevance_labels
from mmdemo.finetune.runs import RunConfig, RunContext, RunOutcome, TrainResult, run
from mmdemo.media.files import MediaError, load_image
from mmdemo.search.index import VectorIndex
from mmdemo.search.manifest import EmbedderMismatch, IndexNotFound
from mmdemo.serving.models.base import ImageTextEmbedder, ModelInfo, batched
from mmdemo.serving.models.embedding_adapter import AdapterMeta, EmbeddingAdapter, ResidualMap, save
from mmdemo.serving.registry import Registry
from mmdemo.tasks.table import RELEVANCE_LABELS

BUILDER = "mmdemo.serving.models.embedding_adapter:load"
RECALL_AT = (1, 5, 10)
TEXT_BATCH = 256  # query texts embedded at a time


@dataclass(frozen=True)
class JudgedQuery:
    """One query of one index with its latest verdicts: the training example (split by query)."""

    index_name: str
    query_text: str | None
    query_media_id: str | None
    relevant: tuple[str, ...]
    irrelevant: tuple[str, ...]
    # the origin of each verdict ("judgement, single", "job 4, reviewed"), by result: the relevant ones
    # first, then the irrelevant ones, in the order of the two tuples
    origins: tuple[str, ...] = ()

    def kept(self, relevant: Sequence[str], irrelevant: Sequence[str]) -> JudgedQuery:
        """This query with only the given results (those in the index), their origins with them."""
        by_result = dict(zip(self.relevant + self.irrelevant, self.origins, strict=False))
        origins = tuple(by_result.get(m, "judgement, single") for m in (*relevant, *irrelevant))
        return JudgedQuery(
            self.index_name, self.query_text, self.query_media_id, tuple(relevant), tuple(irrelevant), origins
        )

    @property
    def key(self) -> str:
        return f"text:{self.query_text}" if self.query_text else f"image:{self.query_media_id}"

    @property
    def modality(self) -> str:
        return "text" if self.query_text else "image"


@dataclass
class AdapterOptions:
    temperature: float = 0.05
    weight_decay: float = 1e-4
    random_negatives: int = 256  # stored vectors drawn at random as extra negatives per step
    eval_every: int = 10  # steps between validation losses (early stopping)
    patience: int = 5  # validation checks without improvement before stopping

    @classmethod
    def from_options(cls, options: dict[str, object]) -> AdapterOptions:
        return cls(**{key: options[key] for key in cls.__dataclass_fields__ if key in options})  # type: ignore[arg-type]


@dataclass
class JudgedVectors:
    """What training needs besides the examples: base query embeddings, stored vectors, the indexes."""

    embedder: ModelInfo
    dim: int
    queries: dict[str, np.ndarray]  # query key -> embedding
    items: dict[str, np.ndarray]  # media id -> stored vector
    indexes: dict[str, VectorIndex]
    background_ids: list[str] = field(default_factory=list)
    background: np.ndarray | None = None


def judged_queries(judgements: Sequence[Label]) -> list[JudgedQuery]:
    """Judgements (and retrieval jobs' labels in their shape) grouped by (index, query), in the order
    given (the reader's: oldest judgement first, then jobs); a later verdict on a result supersedes."""
    verdicts: dict[tuple[str, str | None, str | None], dict[str, tuple[bool, str]]] = {}
    relevant_label = RELEVANCE_LABELS[0]
    for judgement in judgements:
        query = (judgement.index_name or "", judgement.prompt or None, judgement.query_media_id or None)
        verdict = (judgement.value == relevant_label, origin(judgement))
        verdicts.setdefault(query, {})[judgement.media_id] = verdict
    queries = []
    for (index_name, text, media_id), results in verdicts.items():
        relevant = tuple(sorted(m for m, (is_relevant, _) in results.items() if is_relevant))
        irrelevant = tuple(sorted(m for m, (is_relevant, _) in results.items() if not is_relevant))
        origins = tuple(results[m][1] for m in relevant + irrelevant)
        queries.append(JudgedQuery(index_name, text, media_id, relevant, irrelevant, origins))
    return queries


def _query_vector(
    query: JudgedQuery, vectors: VectorIndex, store: Store, embedder: ImageTextEmbedder
) -> np.ndarray | None:
    """An image query's embedding: its stored vector when it is in the index, else its file embedded."""
    media_id = query.query_media_id or ""
    if media_id in vectors:
        return vectors.vector(media_id)
    item = store.media(media_id)
    try:
        return None if item is None else embedder.encode_images([load_image(item.path).image])[0]
    except MediaError:
        return None


def prepare(
    store: Store,
    embedder: ImageTextEmbedder,
    root: Path | None = None,
    seed: int = 0,
    background: int = 4096,
    selection: LabelSelection = DEFAULT_SELECTION,
) -> tuple[list[JudgedQuery], JudgedVectors]:
    """The judged queries a run can learn from and their vectors, or a ValueError saying what is missing."""
    judged = judged_queries(relevance_labels(store, selection))
    if not judged:
        raise ValueError(
            "no relevance judgements yet (nor settled labels of a retrieval labeling job): search in the "
            "Retrieval tab (or `mmdemo search`) and mark results relevant or not relevant first"
        )
    if not any(query.relevant for query in judged):
        count = sum(len(query.irrelevant) for query in judged)
        raise ValueError(
            f"none of the {count} judged results is marked relevant; the adapter learns from results judged "
            "relevant to their query (the ones judged not relevant serve as hard negatives)"
        )
    indexes: dict[str, VectorIndex] = {}
    for name in sorted({query.index_name for query in judged}):
        try:
            indexes[name] = VectorIndex.load(name, root or config.index_dir(), embedder.info)
        except (IndexNotFound, EmbedderMismatch):
            continue  # judgements of a deleted index, or of one another embedder built: not these vectors
    data = JudgedVectors(embedder.info, int(embedder.dim), {}, {}, indexes)
    examples = []
    for query in judged:
        vectors = indexes.get(query.index_name)
        relevant = tuple(m for m in query.relevant if vectors is not None and m in vectors)
        if vectors is None or not relevant:
            continue
        irrelevant = tuple(m for m in query.irrelevant if m in vectors)
        if query.modality == "image" and query.key not in data.queries:
            vector = _query_vector(query, vectors, store, embedder)
            if vector is None:
                continue
            data.queries[query.key] = np.asarray(vector, dtype=np.float32)
        for media_id, vector in zip(
            relevant + irrelevant, vectors.vectors(relevant + irrelevant), strict=True
        ):
            data.items[media_id] = vector
        examples.append(query.kept(relevant, irrelevant))
    distinct = {query.key for query in examples}
    if len(distinct) < 2:
        raise ValueError(
            "need results judged relevant for at least 2 different queries (one to train on, one to hold out "
            f"for validation), in indexes built by {embedder.info.name}; found {len(distinct)}"
        )
    texts = sorted({query.query_text for query in examples if query.query_text})
    for chunk in batched(texts, TEXT_BATCH):
        embedded = np.asarray(embedder.encode_texts(list(chunk)), np.float32)
        data.queries.update(zip((f"text:{text}" for text in chunk), embedded, strict=True))
    sampled = [vectors.sample(background // max(1, len(indexes)), seed) for vectors in indexes.values()]
    data.background_ids = [media_id for ids, _ in sampled for media_id in ids]
    data.background = (
        np.concatenate([v for _, v in sampled]) if sampled else np.zeros((0, data.dim), np.float32)
    )
    return examples, data


# -- the adapter being trained ----------------------------------------------------------------------------
class ResidualMaps(torch.nn.Module):
    """Trainable twin of `embedding_adapter.ResidualMap` per modality, starting at the identity."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.text = torch.nn.Linear(dim, dim)
        self.image = torch.nn.Linear(dim, dim)
        for layer in (self.text, self.image):
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)

    def forward(self, vectors: torch.Tensor, modality: str) -> torch.Tensor:
        layer = self.text if modality == "text" else self.image
        return torch.nn.functional.normalize(vectors + layer(vectors), dim=-1)

    def exported(self) -> dict[str, ResidualMap]:
        return {
            name: ResidualMap(layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy())
            for name, layer in (("text", self.text), ("image", self.image))
        }


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def info_nce(
    maps: ResidualMaps,
    batch: Sequence[JudgedQuery],
    data: JudgedVectors,
    temperature: float,
    background: Sequence[int] = (),
) -> torch.Tensor:
    """Mean InfoNCE over the (query, relevant result) pairs of `batch`: each positive against every
    candidate that is not relevant to that query (its hard negatives, other queries' results, and the
    `background` rows of stored vectors)."""
    pool = list(dict.fromkeys(m for query in batch for m in query.relevant + query.irrelevant))
    candidates = np.stack([data.items[m] for m in pool])
    if len(background):
        pool += [data.background_ids[row] for row in background]
        candidates = np.concatenate([candidates, data.background[list(background)]])  # type: ignore[index]
    items = maps(_tensor(candidates), "image")
    columns_of: dict[str, list[int]] = {}
    for column, media_id in enumerate(pool):
        columns_of.setdefault(media_id, []).append(column)  # a judged item may also be drawn at random
    queries = torch.zeros(len(batch), data.dim)
    for modality in ("text", "image"):
        rows = [row for row, query in enumerate(batch) if query.modality == modality]
        if rows:
            vectors = np.stack([data.queries[batch[row].key] for row in rows])
            queries = queries.index_put((torch.tensor(rows),), maps(_tensor(vectors), modality))
    logits = queries @ items.T / temperature
    relevant = torch.zeros_like(logits, dtype=torch.bool)
    rows, columns = [], []
    for row, query in enumerate(batch):
        for media_id in query.relevant:
            relevant[row, columns_of[media_id]] = True
            rows.append(row)
            columns.append(columns_of[media_id][0])
    negatives = torch.logsumexp(logits.masked_fill(relevant, float("-inf")), dim=1)
    positive = logits[rows, columns]
    return (torch.logaddexp(positive, negatives[rows]) - positive).mean()


# -- recall@k by real searches ------------------------------------------------------------------------------
def recall(examples: Sequence[JudgedQuery], data: JudgedVectors, adapter: EmbeddingAdapter | None) -> dict:
    """Recall@k of each query's relevant results when searching its whole index, averaged over queries;
    with an adapter, the search runs over the index's stored vectors mapped by it (as the app serves)."""
    found: dict[int, list[float]] = {k: [] for k in RECALL_AT}
    for name, vectors in data.indexes.items():
        queries = [query for query in examples if query.index_name == name]
        if not queries:
            continue
        searched = vectors if adapter is None else vectors.mapped(adapter.adapt_images, adapter.label)
        rows = np.stack([data.queries[query.key] for query in queries])
        if adapter is not None:
            rows = np.stack(
                [adapter.adapt(row[None], q.modality)[0] for row, q in zip(rows, queries, strict=True)]
            )
        for query, hits in zip(queries, searched.search(rows, max(RECALL_AT)), strict=True):
            ranked = [hit.id for hit in hits]
            for k in RECALL_AT:
                found[k].append(len(set(ranked[:k]) & set(query.relevant)) / len(query.relevant))
    return {f"recall@{k}": float(np.mean(values)) for k, values in found.items()}


def _batches(examples: list[JudgedQuery], size: int, seed: int) -> Iterator[list[JudgedQuery]]:
    order, rng = list(examples), random.Random(seed)
    while True:
        rng.shuffle(order)
        yield from (order[start : start + size] for start in range(0, len(order), size))


def _candidate(maps: ResidualMaps, data: JudgedVectors, version: str) -> EmbeddingAdapter:
    meta = AdapterMeta(data.embedder.name, data.embedder.version, data.embedder.profile, data.dim)
    info = ModelInfo(
        name=f"retrieval adapter for {data.embedder.name}", version=version, profile="", source=""
    )
    return EmbeddingAdapter(maps.exported(), meta, info)


def _snapshot(maps: ResidualMaps) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in maps.state_dict().items()}  # not live views


def train(context: RunContext[JudgedQuery], data: JudgedVectors) -> TrainResult:
    run_config, options = context.config, AdapterOptions.from_options(context.config.options)
    before = recall(context.validation, data, None)
    maps = ResidualMaps(data.dim)
    optimizer = torch.optim.AdamW(
        maps.parameters(), lr=run_config.learning_rate, weight_decay=options.weight_decay
    )
    rng = np.random.default_rng(run_config.seed)
    background = len(data.background_ids)

    def validation_loss() -> float:
        with torch.no_grad():
            return float(info_nce(maps, context.validation, data, options.temperature, range(background)))

    best_loss, best_state, best_step = validation_loss(), _snapshot(maps), 0
    checks_without_gain, losses = 0, []
    first_loss, step = best_loss, 0
    batches = _batches(context.train, run_config.batch_size, run_config.seed)
    with context.progress(run_config.steps, "retrieval adapter (InfoNCE)") as bar:
        for step in range(1, run_config.steps + 1):
            drawn = rng.choice(background, min(background, options.random_negatives), replace=False)
            loss = info_nce(maps, next(batches), data, options.temperature, drawn.tolist())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            if step % options.eval_every and step != run_config.steps:
                continue
            current = validation_loss()
            bar.set_postfix(loss=f"{losses[-1]:.4f}", validation=f"{current:.4f}")
            if current < best_loss:
                best_loss, best_step, checks_without_gain = current, step, 0
                best_state = _snapshot(maps)
            else:
                checks_without_gain += 1
                if checks_without_gain >= options.patience:
                    break
    maps.load_state_dict(best_state)
    candidate = _candidate(maps, data, context.model_dir.parent.name)
    after = recall(context.validation, data, candidate)
    save(context.model_dir, candidate.maps, candidate.meta)
    (context.model_dir.parent / "validation_queries.json").write_text(
        json.dumps(sorted({query.key for query in context.validation}), indent=2)
    )
    return TrainResult(
        before=before,
        after=after,
        builder=BUILDER,
        primary_metric="recall@5",
        higher_is_better=True,
        details={
            "trainable_parameters": sum(p.numel() for p in maps.parameters()),
            "steps_run": step,
            "best_step": best_step,
            "stopped_early": step < run_config.steps,
            "validation_loss_start": first_loss,
            "validation_loss_best": best_loss,
            "train_loss_first": losses[0] if losses else None,
            "train_loss_last": losses[-1] if losses else None,
            "train_queries": len({query.key for query in context.train}),
            "validation_queries": len({query.key for query in context.validation}),
            "embedder": {"name": data.embedder.name, "version": data.embedder.version},
            "temperature": options.temperature,
        },
    )


def finetune(
    config: RunConfig, *, registry: Registry, store: Store, user: str | None = None, root: Path | None = None
) -> RunOutcome:
    """`mmdemo finetune retrieval`: train an adapter of the active embedder on the stored judgements."""
    embedder = registry.get("embed")
    examples, data = prepare(store, embedder, root, seed=config.seed, selection=LabelSelection.of(config))

    def train_on_vectors(context: RunContext[JudgedQuery]) -> TrainResult:
        return train(context, data)

    # Split by query, so no held-out query (text or image) was trained on, whichever index it searched.
    return run(
        config,
        examples,
        train_on_vectors,
        registry=registry,
        store=store,
        base_task="embed",
        group=lambda query: query.key,
        user=user,
    )
