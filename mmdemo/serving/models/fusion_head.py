"""A trained video fusion head (`mmdemo finetune video --fusion ...`), one loader per strategy.

Files (never pickle): `head.npz` (arrays) and `head.json` (the strategy, labels, which feature models it
reads, its learned modality weights where it has them). A folder without a strategy is `weighted`.

- `weighted`: `FusionHead`, plain numpy: one linear branch per modality, mixed with learned fusion weights.
  A branch's logits are affine in its input, so scoring each time step and averaging over time gives the
  same overall ranking as scoring the time-pooled features the head was trained on.
- `pooled`, `concat`, `attention`: `NetHead`, the strategy's small torch module (`mmdemo.finetune.fusion`)
  rebuilt from its config and its state read from `head.npz`.
- `ensemble`: `EnsembleHead`, members saved in `members/<strategy>/`, their probabilities averaged with
  the weights in `head.json`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmdemo.serving.models.base import LoadContext, ModelInfo

ARRAYS, META = "head.npz", "head.json"
Rows = Mapping[str, np.ndarray | None]  # modality -> one clip's feature rows (steps × dim), None if absent


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    return shifted / shifted.sum(-1, keepdims=True)


def _present(rows: Rows, modality: str) -> bool:
    value = rows.get(modality)
    return value is not None and len(value) > 0


@dataclass
class Branch:
    """One modality's linear map: logits = ((x - mean) / scale) @ weight.T + bias."""

    weight: np.ndarray  # labels × feature dim
    bias: np.ndarray  # labels
    mean: np.ndarray  # feature dim: standardisation learned on the training clips
    scale: np.ndarray

    def logits(self, rows: np.ndarray) -> np.ndarray:
        return ((np.asarray(rows, np.float64) - self.mean) / self.scale) @ self.weight.T + self.bias


@dataclass
class FusionHead:
    info: ModelInfo
    labels: list[str]
    branches: dict[str, Branch]  # modality -> branch
    fusion_weights: dict[str, float]  # modality -> learned weight (they sum to 1)
    feature_models: dict[str, str]  # modality -> name of the model whose features the branch reads
    strategy: str = "weighted"

    @property
    def modalities(self) -> list[str]:
        return list(self.branches)

    @property
    def num_parameters(self) -> int:
        return sum(b.weight.size + b.bias.size for b in self.branches.values()) + len(self.fusion_weights)

    def logits(self, modality: str, rows: np.ndarray) -> np.ndarray:
        """Per-step logits (steps × labels) of one modality's feature rows."""
        return self.branches[modality].logits(rows)

    def probabilities(self, rows: Rows) -> np.ndarray:
        """One clip's label probabilities (in `self.labels` order), as in training: the present modalities'
        pooled logits mixed with the fusion weights renormalised over them."""
        present = [m for m in self.branches if _present(rows, m)]
        if not present:
            return np.full(len(self.labels), 1 / len(self.labels))
        total = sum(self.fusion_weights[m] for m in present)
        mixed = sum(
            self.fusion_weights[m] / total * self.logits(m, np.asarray(rows[m]).mean(0, keepdims=True))[0]
            for m in present
        )
        return _softmax(np.asarray(mixed))


@dataclass
class NetHead:
    """A `pooled`, `concat` or `attention` head: its torch module over standardised feature steps."""

    info: ModelInfo
    labels: list[str]
    strategy: str
    net: Any  # the strategy's torch.nn.Module, in eval mode
    dims: dict[str, int]
    scaling: dict[str, tuple[np.ndarray, np.ndarray]]
    net_options: dict[str, Any]
    feature_models: dict[str, str]
    fusion_weights: dict[str, float] = field(default_factory=dict)  # none: the modalities are joined

    @property
    def modalities(self) -> list[str]:
        return list(self.dims)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def probabilities(self, rows: Rows) -> np.ndarray:
        import torch

        from mmdemo.finetune.fusion.batch import make_batch

        batch = make_batch([rows], [-1], self.dims, self.scaling)
        with torch.no_grad():
            return _softmax(self.net(batch).double().numpy()[0])


@dataclass
class EnsembleHead:
    info: ModelInfo
    labels: list[str]
    members: dict[str, FusionHead | NetHead]  # strategy -> head
    member_weights: dict[str, float]  # strategy -> weight (they sum to 1)
    feature_models: dict[str, str]
    strategy: str = "ensemble"
    fusion_weights: dict[str, float] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(dict.fromkeys(m for head in self.members.values() for m in head.modalities))

    @property
    def num_parameters(self) -> int:
        return sum(head.num_parameters for head in self.members.values())

    def probabilities(self, rows: Rows) -> np.ndarray:
        return sum(
            w * _in_order(self.members[s], self.labels, self.members[s].probabilities(rows))
            for s, w in self.member_weights.items()
        )  # type: ignore[return-value]


Head = FusionHead | NetHead | EnsembleHead


def _in_order(head: Head, labels: list[str], probabilities: np.ndarray) -> np.ndarray:
    return np.asarray(probabilities)[[head.labels.index(label) for label in labels]]


def clip_probabilities(head: Head, rows: Rows, labels: list[str]) -> np.ndarray:
    """One clip's probabilities over `labels` (any order of the head's labels)."""
    return _in_order(head, labels, head.probabilities(rows))


@dataclass
class JointViews:
    """A joined head's answer for one clip, in the shapes the classify path shows."""

    views: dict[str, tuple[list[float], np.ndarray] | None]  # modality -> (times, step log-probs) alone
    fused: np.ndarray  # the whole clip: probabilities over the labels
    steps: np.ndarray  # at each time of the first modality present: the head on that step (times × labels)


def joint_views(
    head: Head, rows_times: Mapping[str, tuple[np.ndarray | None, list[float]]], labels: list[str]
) -> JointViews:
    """Each modality alone (the head with the other masked, step by step), the clip as a whole, and each
    time step with the nearest step of the other modality."""
    rows = {m: rows_times[m][0] for m in head.modalities if m in rows_times}
    present = [m for m in head.modalities if _present(rows, m)]
    views: dict[str, tuple[list[float], np.ndarray] | None] = {m: None for m in rows_times}
    for modality in present:
        matrix = np.asarray(rows[modality])
        alone = np.stack(
            [clip_probabilities(head, {modality: matrix[i : i + 1]}, labels) for i in range(len(matrix))]
        )
        views[modality] = (list(rows_times[modality][1]), np.log(np.clip(alone, 1e-12, None)))
    if not present:
        return JointViews(views, np.full(len(labels), 1 / len(labels)), np.zeros((0, len(labels))))
    fused = clip_probabilities(head, {m: rows[m] for m in present}, labels)
    times = np.asarray(rows_times[present[0]][1], np.float64)
    steps = []
    for t in times:
        nearest = {}
        for m in present:
            source = np.asarray(rows_times[m][1], np.float64)
            nearest[m] = np.asarray(rows[m])[[int(np.abs(source - t).argmin())]]
        steps.append(clip_probabilities(head, nearest, labels))
    return JointViews(views, fused, np.stack(steps))


# -- files ---------------------------------------------------------------------------------------------
def save(folder: Path, head: Head) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "strategy": head.strategy,
        "labels": head.labels,
        "modalities": head.modalities,
        "fusion_weights": head.fusion_weights,
        "feature_models": head.feature_models,
    }
    if isinstance(head, FusionHead):
        arrays = {
            f"{modality}.{part}": getattr(branch, part)
            for modality, branch in head.branches.items()
            for part in ("weight", "bias", "mean", "scale")
        }
        np.savez(folder / ARRAYS, **arrays)
    elif isinstance(head, NetHead):
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in head.net.state_dict().items()}
        for modality, (mean, scale) in head.scaling.items():
            arrays[f"{modality}.mean"], arrays[f"{modality}.scale"] = mean, scale
        np.savez(folder / ARRAYS, **arrays)
        meta |= {"dims": head.dims, "net_options": head.net_options}
    else:
        for strategy, member in head.members.items():
            save(folder / "members" / strategy, member)
        meta |= {"members": head.member_weights}
    (folder / META).write_text(json.dumps(meta, indent=2))


def read(folder: Path, info: ModelInfo) -> Head:
    meta = json.loads((folder / META).read_text())
    strategy = meta.get("strategy", "weighted")
    if strategy == "ensemble":
        members = {s: read(folder / "members" / s, info) for s in meta["members"]}
        return EnsembleHead(info, meta["labels"], members, meta["members"], meta["feature_models"])
    with np.load(folder / ARRAYS, allow_pickle=False) as arrays:
        if strategy == "weighted":
            branches = {
                modality: Branch(
                    *(
                        np.asarray(arrays[f"{modality}.{part}"], np.float64)
                        for part in Branch.__dataclass_fields__
                    )
                )
                for modality in meta["modalities"]
            }
            return FusionHead(info, meta["labels"], branches, meta["fusion_weights"], meta["feature_models"])
        import torch

        from mmdemo.finetune.fusion import net_class

        dims = {m: int(d) for m, d in meta["dims"].items()}
        net = net_class(strategy)(dims, len(meta["labels"]), **meta["net_options"])
        state = {k[4:]: torch.from_numpy(np.array(arrays[k])) for k in arrays.files if k.startswith("net.")}
        net.load_state_dict(state)
        scaling = {
            m: (arrays[f"{m}.mean"].astype(np.float64), arrays[f"{m}.scale"].astype(np.float64)) for m in dims
        }
    return NetHead(
        info, meta["labels"], strategy, net.eval(), dims, scaling, meta["net_options"], meta["feature_models"]
    )


def load(ctx: LoadContext) -> Head:
    """The registry's loader for a `video` version (ctx.path is the version's model folder)."""
    assert ctx.path is not None
    return read(Path(ctx.path), replace(ctx.info, name=f"video fusion head on {ctx.spec.name}"))


def describe(head: Head) -> str:
    """The strategy that serves, and its learned weights where it has them (for notes)."""
    from mmdemo.tasks.fusion import SHOWN_AS

    if isinstance(head, EnsembleHead):
        parts = ", ".join(f"{s} {w:.2f}" for s, w in head.member_weights.items())
        return f"{head.strategy} fusion (members {parts})"
    if head.fusion_weights:
        parts = ", ".join(f"{SHOWN_AS.get(m, m)} {w:.2f}" for m, w in head.fusion_weights.items())
        return f"{head.strategy} fusion, fusion weights learned in training ({parts})"
    return f"{head.strategy} fusion (modalities joined inside the head: no separate weights)"
