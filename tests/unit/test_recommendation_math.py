"""The read-time fold-in solves what implicit solves; the blend's order and reasons."""

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from shared.recommendations.schemas import ReasonCode, Strategy
from shared.recommendations.service import BlendWeights, Candidates, blend, fold_in, own_subjects
from shared.recommendations.training import fit_als
from shared.settings import Settings


@pytest.mark.parametrize("alpha", [1.0, 5.0])
def test_fold_in_matches_implicits_own_solve(alpha: float) -> None:
    from implicit.cpu.als import AlternatingLeastSquares

    rng = np.random.default_rng(3)
    dense = (rng.random((60, 40)) < 0.1) * rng.integers(1, 4, (60, 40))
    matrix = csr_matrix(dense.astype(np.float32))
    settings = Settings(
        als_factors=8, als_iterations=5, als_alpha=alpha, als_regularization=0.5, als_threads=1
    )
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=8, regularization=0.5, alpha=alpha, iterations=5, use_cg=False, random_state=1
        )
        model.fit(matrix, show_progress=False)
    items = np.asarray(model.item_factors, dtype=np.float64)
    row = matrix[7]
    expected = model.recalculate_user(7, row)
    got = fold_in(items.T @ items, items[row.indices], row.data.astype(np.float64), settings)
    assert np.allclose(got, expected, rtol=1e-3, atol=1e-4)
    # And our trainer hands back item factors of the right shape.
    factors, seconds = fit_als(settings, matrix)
    assert factors.shape == (40, 8) and seconds >= 0


def test_blend_orders_by_weighted_scores_and_names_the_reason() -> None:
    found = Candidates(
        strategy=Strategy.hybrid,
        history={"seen": 2.0},
        content={"near": 0.9, "far": 0.1, "hit": 0.5},
        als={"hit": 1.0, "far": 0.2},
        popular={"hit": 1.0, "far": 5.0, "near": 1.0},
    )
    ranked = blend(found, BlendWeights(content=0.5, als=0.2, popular=0.3), 3)
    # near: 0.5 x 0.9 + 0.2 x 0.2 (ALS floor) + 0.3 x 1/5 = 0.55; hit: 0.51; far: 0.39.
    assert [r.course_id for r in ranked] == ["near", "hit", "far"]
    reasons = {r.course_id: r.reason for r in ranked}
    assert reasons["near"] is ReasonCode.similar_to_taken
    assert reasons["hit"] is ReasonCode.learners_like_you
    assert reasons["far"] is ReasonCode.popular
    only_popular = blend(found, BlendWeights(0, 0, 1), 1)
    assert only_popular[0].course_id == "far"
    # Without history, content comes from the interests text.
    found.history = {}
    assert blend(found, BlendWeights(1, 0, 0), 1)[0].reason is ReasonCode.matches_interests


def test_own_subjects_lifts_the_learners_nearest_courses_into_the_last_places() -> None:
    order = [f"p{i}" for i in range(12)] + ["n0", "n1", "n2"]
    nearest = ["n0", "n1", "n2"]
    # Two places kept: the best-ranked nearest ones replace the lowest-ranked others.
    assert own_subjects(order, nearest, 5, 2) == ["p0", "p1", "p2", "n0", "n1"]
    # A nearest course already in the top counts, and keeps its place.
    order = ["p0", "n2", "p1", "p2", "p3", "n0", "n1"]
    assert own_subjects(order, nearest, 5, 2) == ["p0", "n2", "p1", "p2", "n0"]
    # Enough already, none kept, or nothing near left: the blend's top as it is.
    assert own_subjects(["n0", "n1", "p0"], nearest, 3, 2) == ["n0", "n1", "p0"]
    assert own_subjects(order, nearest, 5, 0) == order[:5]
    assert own_subjects(order, [], 5, 2) == order[:5]
