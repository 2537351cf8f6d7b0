"""The video head run's report: validation scores (sklearn), confusion matrices drawn, per-class table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from mmdemo.tasks import fusion


def scores(truth: Sequence[int], predicted: Sequence[int], labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1 (over the classes that occur), per-class precision/recall/F1, confusion matrix."""
    indices = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(
        truth, predicted, labels=indices, zero_division=0
    )
    return {
        "accuracy": float(np.mean(np.asarray(truth) == np.asarray(predicted))),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "confusion": confusion_matrix(truth, predicted, labels=indices).tolist(),
    }


def draw_confusion(matrices: dict[str, list[list[int]]], labels: list[str], path: Path) -> Path:
    """Confusion matrices side by side (rows: true label, columns: predicted), drawn with PIL."""
    font = ImageFont.load_default(size=14)
    cell, gap, k = 44, 40, len(labels)
    names = [f"{i + 1}. {label}" for i, label in enumerate(labels)]
    margin = 20 + max(int(font.getlength(name)) for name in names)
    width = margin + len(matrices) * (k * cell + gap) + 10
    height = 60 + k * cell + 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for panel, (title, matrix) in enumerate(matrices.items()):
        left = margin + panel * (k * cell + gap)
        draw.text((left, 8), title, fill="black", font=font)
        for column in range(k):
            draw.text((left + column * cell + cell // 2 - 4, 34), str(column + 1), fill="black", font=font)
        for row, counts in enumerate(matrix):
            total = max(1, sum(counts))
            for column, count in enumerate(counts):
                share = count / total
                shade = (int(255 - 200 * share), int(255 - 150 * share), 255)
                box = (
                    left + column * cell,
                    56 + row * cell,
                    left + (column + 1) * cell,
                    56 + (row + 1) * cell,
                )
                draw.rectangle(box, fill=shade, outline="grey")
                ink = "white" if share > 0.6 else "black"
                draw.text((box[0] + cell // 2 - 5, box[1] + cell // 2 - 8), str(count), fill=ink, font=font)
    for row, name in enumerate(names):
        draw.text((10, 56 + row * cell + cell // 2 - 8), name, fill="black", font=font)
    draw.text((margin, 60 + k * cell + 12), "rows: true label · columns: predicted", fill="grey", font=font)
    image.save(path)
    return path


def per_class_markdown(details: dict[str, Any]) -> str:
    before, after = details["per_class"]["before"], details["per_class"]["after"]
    rows = [
        f"| {label} | {after[label]['support']} | "
        + " | ".join(f"{before[label][m]:.2f} → {after[label][m]:.2f}" for m in ("precision", "recall", "f1"))
        + " |"
        for label in details["labels"]
    ]
    stop = (
        "the members' probabilities averaged (each member trained in this run)"
        if details.get("steps") is None
        else f"{details['steps']} steps, "
        + (
            f"stopped early after epoch {details['epochs']}"
            if details["stopped_early"]
            else f"{details['epochs']} epochs"
        )
        + f"; best epoch {details['best_epoch']}"
        + (
            f"; then trained afresh on all training clips for {details['refit_epochs']} epochs"
            if details.get("refit_epochs")
            else ""
        )
    )
    return "\n".join(
        [
            "## Per class (validation clips; before → after)",
            "",
            "| label | clips | precision | recall | F1 |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"- fusion strategy: {details.get('fusion', 'weighted')}; {weights_line(details)}",
            f"- training: {stop} (early stopping on {details['early_stop_clips']} training clips held back)",
            *strategies_markdown(details),
            *(f"- skipped: {why}" for why in details["skipped_clips"]),
            "",
            f"![confusion matrices]({details['plot']})",
            "",
        ]
    )


def weights_line(details: dict[str, Any]) -> str:
    if details.get("member_weights"):
        return "member weights: " + ", ".join(f"{s} {w:.2f}" for s, w in details["member_weights"].items())
    if details.get("fusion_weights"):
        shown = ", ".join(f"{fusion.SHOWN_AS[m]} {w:.2f}" for m, w in details["fusion_weights"].items())
        return f"learned fusion weights: {shown}"
    return "the modalities are joined inside the head (no separate weights)"


def strategies_markdown(details: dict[str, Any]) -> list[str]:
    """The strategies trained in this run side by side (one line when only one was)."""
    trained = details.get("strategies") or {}
    if len(trained) < 2:
        return []
    rows = [
        f"| {name}{' (kept)' if name == details['fusion'] else ''} | {r['accuracy']:.4f} | "
        f"{r['macro_f1']:.4f} | {r['parameters']} | {r['train_seconds']:.2f} |"
        for name, r in trained.items()
    ]
    return [
        "",
        "## Fusion strategies (validation clips; the best macro-F1 is kept)",
        "",
        "| strategy | accuracy | macro-F1 | parameters | training s |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
