"""How far can any blend of the signals in MOOCCube go? A learned reranker (gradient-boosted
trees) over every signal we could compute, fitted on the evaluation's tuning half and measured on
its reporting half, next to popularity and the shipped blend of content and popularity.

This bounds the model family, not the service: what the API serves is measured by
bench/evaluate_recs.py. The split, the halves, the embeddings (the service's model and text) and
ALS (the training worker's fit, the read path's fold-in) are the evaluation's own.

    .venv/bin/python -m bench.recs_ceiling
"""

import argparse
import time
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from bench import mooccube
from bench.evaluate_recs import GOAL, K, Scores, halves, interval, ratio_draws, split
from shared.catalog.schemas import embedding_text
from shared.embedding import get_embedder
from shared.recommendations.service import fold_in
from shared.recommendations.training import fit_als
from shared.settings import Settings

CANDIDATES = 100
BLEND_CONTENT = 0.35  # the evaluation's best blend: content 0.35, popularity 0.65
SIGNALS = [
    "popularity",  # log(1 + learners)
    "content",  # cosine to the learner's vector, as the service computes it
    "content max",  # the highest cosine to any one of the learner's courses
    "ALS",  # the folded-in learner's score
    "EASE",  # closed-form item-item regression (Steck 2019), lambda 200
    "co-enrolment lift",  # P(j | i) / P(j), shrunk towards 1
    "co-enrolment lift of similar courses",  # the same, borrowed from content neighbours
    "co-enrolments",  # how many learners took j with one of the learner's courses
    "mode affinity",  # share of the learner's courses with j's mode
    "history size",
]
COLLABORATIVE = {"ALS", "EASE", "co-enrolment lift", "co-enrolment lift of similar courses",
                 "co-enrolments"}  # fmt: skip


@dataclass
class Data:
    ids: list[str]
    index: dict[str, int]
    vectors: np.ndarray  # unit course embeddings
    learners: int
    popularity: np.ndarray  # learners who took each course
    cooccurrence: np.ndarray  # learners who took both i and j (0 on the diagonal)
    ease: np.ndarray
    item_factors: np.ndarray
    gram: np.ndarray
    mode: np.ndarray


def prepare(train: dict[str, list[str]], settings: Settings) -> Data:
    courses = mooccube.courses()
    ids = [c["id"] for c in courses]
    index = {course_id: i for i, course_id in enumerate(ids)}
    texts = [
        embedding_text({"title": c["title"], "description": c["description"]}) for c in courses
    ]
    vectors = np.asarray(get_embedder(settings).encode(texts), dtype=np.float64)
    rows, cols = [], []
    for row, (_, taken) in enumerate(sorted(train.items())):
        rows += [row] * len(taken)
        cols += [index[c] for c in taken]
    matrix = csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(train), len(ids))
    )
    both = np.asarray((matrix.T @ matrix).todense())
    taken_by = np.diag(both).copy()
    ease_inverse = np.linalg.inv(both + 200.0 * np.eye(len(ids)))
    ease = -ease_inverse / np.diag(ease_inverse)
    np.fill_diagonal(ease, 0.0)
    np.fill_diagonal(both, 0.0)
    # ALS with the service's settings, on the same enrol weight the service gives an enrolment.
    factors, _ = fit_als(settings, (matrix * settings.weight_enroll).tocsr())
    mode = np.asarray([str(c["metadata"].get("mode")) for c in courses])
    return Data(ids, index, vectors, len(train), taken_by, both, ease, factors,
                factors.T @ factors, mode)  # fmt: skip


def signals(data: Data, history: list[str], settings: Settings) -> np.ndarray:
    """One row per course, one column per entry of SIGNALS."""
    taken = [data.index[c] for c in history]
    learner = data.vectors[taken].sum(axis=0)
    similarity = data.vectors @ data.vectors[taken].T
    share = (data.popularity + 1.0) / data.learners
    prior = 50 * share  # shrinks a lift towards 1 with 50 learners' worth of popularity
    taken_count = data.popularity[taken, None]
    lift = np.log((data.cooccurrence[taken] + prior) / ((taken_count + 50) * share))
    kernel = np.exp((data.vectors[taken] @ data.vectors.T - 1.0) / 0.1)
    neighbours_taken = (kernel @ data.popularity)[:, None]
    borrowed = np.log((kernel @ data.cooccurrence + prior) / ((neighbours_taken + 50) * share))
    user = fold_in(
        data.gram, data.item_factors[taken], np.full(len(taken), settings.weight_enroll), settings
    )
    columns = [
        np.log1p(data.popularity),
        data.vectors @ (learner / np.linalg.norm(learner)),
        similarity.max(axis=1),
        data.item_factors @ user,
        data.ease[taken].sum(axis=0),
        lift.mean(axis=0),
        borrowed.mean(axis=0),
        data.cooccurrence[taken].sum(axis=0),
        np.mean([data.mode == data.mode[i] for i in taken], axis=0),
        np.full(len(data.ids), float(len(taken))),
    ]
    return np.stack(columns, axis=1)


def blend_score(features: np.ndarray) -> np.ndarray:
    popular = features[:, 0] / features[:, 0].max()
    return BLEND_CONTENT * features[:, 1] + (1 - BLEND_CONTENT) * popular


def columns_of(features: np.ndarray, columns: list[int], rounded: bool) -> np.ndarray:
    """The chosen signals as one row per (learner, candidate); popularity first."""
    picked = features[:, :, columns].reshape(-1, len(columns))
    if rounded:
        picked[:, 0] = np.round(picked[:, 0], 1)
    return picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    if not mooccube.available():
        raise SystemExit(f"skipped: {mooccube.data_dir()} is absent")
    from sklearn.ensemble import HistGradientBoostingClassifier

    settings = Settings()
    started = time.perf_counter()
    enrolments = mooccube.enrolments()
    train_pairs, held_out = split(enrolments)
    train: dict[str, list[str]] = {}
    for learner, course in train_pairs:
        train.setdefault(learner, []).append(course)
    tune_set, report_set = halves(held_out, None)
    data = prepare(train, settings)

    def lists(learners: list[str]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[int]]:
        """Per learner: the signals of their candidates (the blend's top CANDIDATES), which
        candidate is the held-out course (none, if it is outside), the candidates, the held-out
        course."""
        features, labels, candidates, truth = [], [], [], []
        for learner in learners:
            table = signals(data, train[learner], settings)
            seen = [data.index[c] for c in train[learner]]
            score = blend_score(table)
            score[seen] = -np.inf
            top = np.argsort(-score, kind="stable")[:CANDIDATES]
            target = data.index[held_out[learner]]
            features.append(table[top])
            labels.append(top == target)
            candidates.append(top)
            truth.append(target)
        return np.stack(features), np.stack(labels), candidates, truth

    tune_x, tune_y, _, _ = lists(tune_set)
    report_x, report_y, report_top, report_truth = lists(report_set)
    prepared_s = time.perf_counter() - started

    def scored(order_of: np.ndarray) -> Scores:
        scores = Scores()
        for row, order in enumerate(order_of):
            ranked = [data.ids[report_top[row][i]] for i in order[:K]]
            scores.add(ranked, data.ids[report_truth[row]])
        return scores

    popularity = Scores()
    for learner in report_set:
        counts = data.popularity.copy()
        counts[[data.index[c] for c in train[learner]]] = -1
        top = np.argsort(-counts, kind="stable")[:K]
        popularity.add([data.ids[i] for i in top], held_out[learner])
    rows = {
        "popularity": popularity,
        "blend: content 0.35 + popularity 0.65": scored(
            np.tile(np.arange(CANDIDATES), (len(report_set), 1))
        ),
    }
    # (signals, log popularity rounded to 0.1?): trees can tell the most popular courses apart
    # by their exact counts and learn a bias per course from the tuning half's held-out courses,
    # which says nothing about any other sample; rounding hides which course is which.
    two = ["popularity", "content"]
    variants = {
        "reranker, popularity and content, exact counts": (two, False),
        "reranker, popularity and content": (two, True),
        "reranker, every signal but the collaborative ones": (
            [s for s in SIGNALS if s not in COLLABORATIVE], True,
        ),
        "reranker, every signal": (SIGNALS, True),
    }  # fmt: skip
    for name, (chosen, rounded) in variants.items():
        columns = [SIGNALS.index(s) for s in chosen]
        model = HistGradientBoostingClassifier(
            max_iter=300, learning_rate=0.05, max_leaf_nodes=15, l2_regularization=1.0,
            random_state=0,
        )  # fmt: skip
        model.fit(columns_of(tune_x, columns, rounded), tune_y.reshape(-1))
        probability = model.predict_proba(columns_of(report_x, columns, rounded))[:, 1]
        order = np.argsort(-probability.reshape(len(report_set), CANDIDATES), axis=1, kind="stable")
        rows[name] = scored(order)
    total_s = time.perf_counter() - started

    print(
        f"MOOCCube: {len(data.ids)} courses, {len(train_pairs)} training enrolments of "
        f"{len(train)} learners; rerankers fitted on {len(tune_set)} learners, reported on "
        f"{len(report_set)} (candidates: the blend's top {CANDIDATES}, which hold the held-out "
        f"course for {report_y.any(axis=1).mean():.0%} of them); signals {prepared_s:.0f} s, "
        f"all {total_s:.0f} s"
    )
    print(f"\n| model | NDCG@{K} | vs popularity | 95% interval | P(>= {GOAL}x) |")
    print("|---|---|---|---|---|")
    for name, scores in rows.items():
        draws = ratio_draws(scores, popularity)
        print(
            f"| {name} | {scores.ndcg:.4f} | {scores.ndcg / popularity.ndcg:.3f}x | "
            f"{interval(draws)} | {(draws >= GOAL).mean():.2f} |"
        )
    blend = rows["blend: content 0.35 + popularity 0.65"]
    best = rows["reranker, every signal"]
    print(
        f"\nreranker on every signal / the blend: {best.ndcg / blend.ndcg:.3f}x, "
        f"95% interval {interval(ratio_draws(best, blend))}"
    )


if __name__ == "__main__":
    main()
