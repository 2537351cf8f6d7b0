"""Inter-annotator agreement: Cohen's kappa (two raters), Fleiss' kappa (n raters), exact-match rate.

Pure functions over label values; `labeling.stats` decides which labels go in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters who labeled the same items, in the same order (Cohen, 1960)."""
    if len(first) != len(second):
        raise ValueError("both raters must label the same items")
    if not first:
        raise ValueError("no items to compare")
    total = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / total
    first_counts, second_counts = Counter(first), Counter(second)
    expected = sum(first_counts[c] * second_counts[c] for c in first_counts) / total**2
    if expected == 1.0:  # both raters used one and the same category throughout
        return 1.0
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an items × categories table of how many raters chose each category (Fleiss, 1971).

    Every item must have the same number of ratings."""
    if not counts:
        raise ValueError("no items to compare")
    raters = sum(counts[0])
    if raters < 2 or any(sum(row) != raters for row in counts):
        raise ValueError("every item needs the same number (at least 2) of ratings")
    items = len(counts)
    categories = len(counts[0])
    shares = [sum(row[j] for row in counts) / (items * raters) for j in range(categories)]
    per_item = [(sum(n * n for n in row) - raters) / (raters * (raters - 1)) for row in counts]
    observed = sum(per_item) / items
    expected = sum(p * p for p in shares)
    if expected == 1.0:
        return 1.0
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa_from_labels(ratings: Sequence[Sequence[Hashable]]) -> float:
    """Fleiss' kappa from each item's list of labels (one per rater; raters may differ between items)."""
    categories = sorted({label for row in ratings for label in row}, key=str)
    return fleiss_kappa([[Counter(row)[c] for c in categories] for row in ratings])


def exact_match_rate(groups: Sequence[Sequence[Hashable]]) -> float:
    """The share of items (with at least two answers) on which every answer is the same."""
    compared = [group for group in groups if len(group) >= 2]
    if not compared:
        raise ValueError("no item has two answers to compare")
    return sum(len(set(group)) == 1 for group in compared) / len(compared)
