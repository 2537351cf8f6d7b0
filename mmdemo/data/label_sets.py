"""Named label sets (video classification, labeling jobs), saved from the UI or the CLI."""

from __future__ import annotations

import json

from mmdemo.data.db import ANONYMOUS, StoreCore, StoreError


class LabelSetRecords(StoreCore):
    def save_label_set(self, name: str, labels: list[str], *, user: str | None = None) -> list[str]:
        """Create or replace a named label set; blank and repeated labels are dropped, order kept."""
        name = name.strip()
        cleaned = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
        if not name:
            raise StoreError("a label set needs a name")
        if not cleaned:
            raise StoreError(f"label set {name!r} has no labels")
        self._save(
            "label_sets", "name", {"name": name, "labels": json.dumps(cleaned), "user": user or ANONYMOUS}
        )
        return cleaned

    def label_set(self, name: str) -> list[str] | None:
        row = self._get("label_sets", name)
        return json.loads(row["labels"]) if row else None

    def label_set_names(self) -> list[str]:
        return [row["name"] for row in self._select("label_sets", order_by="name")]
