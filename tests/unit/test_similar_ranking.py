"""Similar courses: co-enrolment and shared skills move a course up, and say so."""

from types import SimpleNamespace
from typing import Any

from shared.recommendations.schemas import SimilarReasonCode
from shared.recommendations.similar import Signals, rank
from shared.settings import Settings


def course(course_id: str, skills: list[str] | None = None) -> Any:
    return SimpleNamespace(id=course_id, title=course_id, skills=skills or [])


def signals(together: dict[str, int], takers: int, skills: dict[str, list[str]]) -> Signals:
    cosine = {"near": 0.80, "middle": 0.70, "far": 0.40, "farther": 0.35}
    rows = {i: course(i, skills.get(i)) for i in cosine}
    return Signals(course("source", skills.get("source")), cosine, together, takers, rows)


def test_nobody_took_it_so_content_alone_orders() -> None:
    ranked = rank(signals({}, 0, {}), Settings(), limit=4)
    assert [r.course_id for r in ranked] == ["near", "middle", "far", "farther"]
    assert {r.reason for r in ranked} == {SimilarReasonCode.similar_content}


def test_a_course_its_learners_also_took_comes_first_and_says_why() -> None:
    ranked = rank(signals({"far": 30, "farther": 1}, 40, {}), Settings(), limit=4)
    assert ranked[0].course_id == "far"
    assert ranked[0].reason is SimilarReasonCode.taken_together and ranked[0].together == 30
    assert ranked[1].reason is SimilarReasonCode.similar_content


def test_shared_skills_break_a_near_tie_and_name_the_skills() -> None:
    skills = {"source": ["python", "sql"], "middle": ["python", "sql"], "near": ["painting"]}
    ranked = rank(signals({}, 0, skills), Settings(similar_skills=0.2), limit=2)
    assert [r.course_id for r in ranked] == ["middle", "near"]
    assert ranked[0].reason is SimilarReasonCode.shared_skills
    assert ranked[0].shared == ("python", "sql")


def test_without_the_vector_index_co_enrolment_then_skills_order_and_no_cosine_is_claimed() -> None:
    skills = {"source": ["python", "sql"], "far": ["python", "sql"], "farther": ["sql", "go"]}
    rows = {i: course(i, skills.get(i)) for i in ("near", "far", "farther")}
    degraded = Signals(
        course("source", skills["source"]), {}, {"near": 5}, 10, rows, degraded=["semantic"]
    )
    ranked = rank(degraded, Settings(), limit=3)
    assert [r.course_id for r in ranked] == ["near", "far", "farther"]
    assert [r.reason for r in ranked] == [
        SimilarReasonCode.taken_together,
        SimilarReasonCode.shared_skills,
        SimilarReasonCode.shared_skills,
    ]
    assert all(r.cosine is None for r in ranked)
