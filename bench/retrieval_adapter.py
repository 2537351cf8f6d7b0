"""Does a retrieval adapter trained on judgements help, with a real embedder? The lite profile (ConSE)
over the 26 sample photos, grouped by domain (space, medical, texture, ...): a user judges the results of
a few phrasings per domain, `mmdemo finetune retrieval` trains on them, and phrasings nobody judged are
searched before (base embeddings, the baseline) and after. Also the time a search takes with each.

Run: `python bench/retrieval_adapter.py [finetune options]` (about a minute on 2 CPU cores)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from a checkout

GROUPS = {
    "space": ["astronaut", "astronaut_portrait", "galaxies_closeup", "hubble_deep_field", "moon", "rocket"],
    "medical": ["cell_microscopy", "immunohistochemistry", "microaneurysms", "retina"],
    "texture": ["brick_wall", "grass", "gravel"],
    "temple": ["chinese_temple", "temple_roof"],
    "text": ["printed_page", "text_sign"],
    "flower": ["flower", "flower_closeup"],
}
PHRASES = {  # the last HELD_OUT of each domain are never judged
    "space": ["outer space", "space exploration", "astronomy", "the cosmos", "NASA mission", "night sky"],
    "medical": [
        "medical imaging",
        "pathology slide",
        "biomedical image",
        "tissue sample",
        "clinical diagnosis",
        "lab specimen",
    ],
    "texture": [
        "background texture",
        "rough surface",
        "ground material",
        "surface pattern",
        "building material",
        "natural texture",
    ],
    "temple": [
        "asian architecture",
        "religious building",
        "pagoda",
        "buddhist shrine",
        "traditional roof",
        "historic architecture",
    ],
    "text": ["written words", "typography", "document", "lettering", "something to read", "signage"],
    "flower": ["botany", "blossom", "petals", "garden plant", "bloom", "floral"],
}
HELD_OUT = 2
KS = (1, 5, 10)


def recall(pairs: list[tuple[str, str]]) -> tuple[dict[str, float], str, float]:
    """Recall@k of real searches (relevant = the domain's photos), the version that ranked, ms per search."""
    from mmdemo.services import default_services

    found_at = {k: 0.0 for k in KS}
    started, version = time.perf_counter(), ""
    for text, domain in pairs:
        found = default_services().index.search(text=text, k=max(KS))
        version = found.adapter_version
        ranked = [Path(result.path).stem for result in found.results]
        for k in KS:
            found_at[k] += len(set(ranked[:k]) & set(GROUPS[domain])) / len(GROUPS[domain])
    milliseconds = (time.perf_counter() - started) * 1000 / len(pairs)
    return {f"recall@{k}": value / len(pairs) for k, value in found_at.items()}, version, milliseconds


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="mmdemo-bench-"))
    os.environ.update(
        MMDEMO_DATA_DIR=str(folder / "data"), MMDEMO_INDEX_DIR=str(folder / "index"), MMDEMO_PROFILE="lite"
    )
    from mmdemo.cli import main as cli
    from mmdemo.services import default_services
    from tests.retrieval_finetune_helpers import judge_like_a_user

    default_services().index.default_index()
    judged = [(p, domain) for domain, phrases in PHRASES.items() for p in phrases[:-HELD_OUT]]
    held_out = [(p, domain) for domain, phrases in PHRASES.items() for p in phrases[-HELD_OUT:]]
    for text, domain in judged:
        judge_like_a_user(
            default_services().index,
            text,
            {f"{stem}.jpg" for stem in GROUPS[domain]},
            index="default",
            user="bench",
        )
    recall(held_out)  # warm the models and the index
    before, base, base_ms = recall(held_out)
    output, started = io.StringIO(), time.perf_counter()
    with contextlib.redirect_stdout(output):
        code = cli(["finetune", "retrieval", "--json", *sys.argv[1:]])
    if code:
        raise SystemExit(code)
    run_seconds = time.perf_counter() - started
    version = json.loads(output.getvalue())
    recall(held_out)  # the first search after the swap maps the stored vectors
    after, adapted, adapted_ms = recall(held_out)
    metrics = version["metrics"]
    print(
        f"lite profile, {len(judged)} judged queries ({metrics['train_queries']} train, "
        f"{metrics['validation_queries']} validation), {len(held_out)} never-judged phrasings, 26 photos; "
        f"{version['version']} {version['status']} after {metrics['steps_run']} steps ({run_seconds:.1f} s)\n"
    )
    print(f"| queries | metric | base | adapter {version['version']} |")
    print("|---|---|---|---|")
    rows = [
        ("run validation split", metrics["before"], metrics["after"]),
        ("never-judged phrasings", before, after),
    ]
    for queries, base_recall, adapter_recall in rows:
        for name in (f"recall@{k}" for k in KS):
            print(f"| {queries} | {name} | {base_recall[name]:.3f} | {adapter_recall[name]:.3f} |")
    print(f"| never-judged phrasings | ms per search | {base_ms:.1f} | {adapted_ms:.1f} |")
    print(f"\nranked by: {base} -> {adapted}")


if __name__ == "__main__":
    main()
