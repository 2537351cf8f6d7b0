"""An index's manifest and folder: what it was built with, where its files live, how to name its errors,
and the `Hit` a search returns.

No FAISS here (that is `search.index`); this module is what the CLI's `index list`, the service's freshness
checks, the error messages and retrieval's records need without importing FAISS or loading vectors.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mmdemo.serving.models.base import ModelInfo

MANIFEST = "manifest.json"
WRITE_LOCK = ".write.lock"  # the index service's cross-process lock of saves; never removed by a save
FORMAT = 1


class VectorIndexError(ValueError):
    """An index that cannot be used as asked, with a message for the person who asked.

    A ValueError, so the CLI and `ui.common.friendly` show it as one clear line."""


class IndexNotFound(VectorIndexError):
    pass


class EmbedderMismatch(VectorIndexError):
    pass


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Manifest:
    name: str
    embedder: str
    embedder_version: str
    profile: str
    dim: int
    index_type: str
    metric: str = "inner_product"
    count: int = 0
    generation: int = 0  # the index version: +1 on every save
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    format: int = FORMAT

    def built_with(self) -> str:
        return f"{self.embedder} (version {self.embedder_version}, profile {self.profile})"


@dataclass(frozen=True)
class Hit:
    id: str  # media id in the store
    score: float
    rank: int  # 1 = best


def rebuild_command(name: str) -> str:
    return f"mmdemo index rebuild --index {name}"


def manifest_path(root: Path, name: str) -> Path:
    return Path(root) / name / MANIFEST


def exists(name: str, root: Path) -> bool:
    return manifest_path(root, name).exists()


def read_manifest(name: str, root: Path) -> Manifest:
    path = manifest_path(root, name)
    if not path.exists():
        raise IndexNotFound(
            f"no index named {name!r} in {root}; build it with `mmdemo index add PATH --index {name}`"
        )
    try:
        data = json.loads(path.read_text())
        return Manifest(**{key: data[key] for key in Manifest.__dataclass_fields__ if key in data})
    except (OSError, ValueError, TypeError) as error:
        raise VectorIndexError(
            f"the manifest of index {name!r} is unreadable ({error}); {rebuild_command(name)}"
        ) from None


def list_indexes(root: Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{MANIFEST}") if not p.parent.name.startswith("."))


def remove_index(name: str, root: Path) -> None:
    folder = Path(root) / name
    if not manifest_path(root, name).exists():
        raise IndexNotFound(f"no index named {name!r} in {root}")
    shutil.rmtree(folder)


def atomic_write(path: Path, write: Any) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    write(temporary)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def check_embedder(manifest: Manifest, embedder: ModelInfo) -> None:
    if (manifest.embedder, manifest.embedder_version) != (embedder.name, embedder.version):
        raise EmbedderMismatch(
            f"index {manifest.name!r} was built with {manifest.built_with()}, but the active embedder is "
            f"{embedder.name} (version {embedder.version}, profile {embedder.profile}); rebuild it with "
            f"`{rebuild_command(manifest.name)}`"
        )
