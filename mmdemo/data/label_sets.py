"""Named label sets (video classification, labeling jobs), saved from the UI or the CLI."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable

from mmdemo.data.db import ANONYMOUS, StoreCore, StoreError


def visible(text: str) -> str:
    """`text` without control and format characters (bidi overrides, zero-width marks), which would make a
    label print differently from what it says, and with its ends trimmed."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf")).strip()


class LabelSetRecords(StoreCore):
    def save_label_set(
        self,
        name: str,
        labels: list[str],
        *,
        user: str | None = None,
        may_replace: Callable[[str], None] | None = None,
    ) -> list[str]:
        """Create or replace a named label set; blank and repeated labels are dropped, order kept, and
        control and bidi characters are stripped from the name and the labels.

        When the set exists, `may_replace(its creator)` runs first, in the same transaction, and may raise
        to refuse: two people saving one new name at once cannot both be its creator."""
        name = visible(name)
        cleaned = list(dict.fromkeys(visible(label) for label in labels if visible(label)))
        if not name:
            raise StoreError("a label set needs a name")
        if not cleaned:
            raise StoreError(f"label set {name!r} has no labels")
        with self._write():
            existing = self._get("label_sets", name)
            creator = (existing["user"] or ANONYMOUS) if existing else user or ANONYMOUS
            if existing is not None and may_replace is not None:
                may_replace(creator)
            # the creator stays the owner when an admin replaces the labels
            self._save("label_sets", "name", {"name": name, "labels": json.dumps(cleaned), "user": creator})
        return cleaned

    def label_set_owner(self, name: str) -> str | None:
        row = self._get("label_sets", visible(name))
        return (row["user"] or ANONYMOUS) if row else None

    def label_set(self, name: str) -> list[str] | None:
        row = self._get("label_sets", visible(name))
        return json.loads(row["labels"]) if row else None

    def label_set_names(self) -> list[str]:
        return [row["name"] for row in self._select("label_sets", order_by="name")]
