"""The table of task kinds is complete, and the API's publish, the Celery routes and the
workers' dispatch all follow it."""

import importlib
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.catalog.schemas import CourseIn, CoursePatch
from shared.catalog.writes import CoursePatchItem, CourseRef
from shared.learners.schemas import InteractionIn, LearnerIn
from shared.learners.writes import LearnerRef
from shared.ledger.kinds import KINDS, read_items
from shared.ledger.models import TASK_TYPES
from shared.ledger.schemas import ItemError, TaskType
from shared.messaging import build_celery, publish_write
from shared.recommendations.training import RetrainItem
from shared.settings import Settings

NOW = datetime(2026, 1, 31, 12, tzinfo=UTC)

# Each kind's payload item, built the way the API's route builds it.
API_ITEMS: dict[TaskType, dict[str, Any]] = {
    TaskType.course_upsert: CourseIn(id="c:1", title="Cooking", description="Pasta.").to_record(),
    TaskType.course_bulk_upsert: CourseIn(
        id="c:2", title="Baking", description="Bread.", skills=["ovens"], price=5, currency="EUR"
    ).to_record(),
    TaskType.course_patch: CoursePatchItem(
        id="c:1", changes=CoursePatch(title="Cooking II", rating=None).changes()
    ).model_dump(mode="json"),
    TaskType.course_delete: CourseRef(id="c:1").model_dump(mode="json"),
    TaskType.learner_upsert: LearnerIn(interests="bread", level="beginner").to_record("u:1"),
    TaskType.learner_delete: LearnerRef(id="u:1").model_dump(mode="json"),
    TaskType.interaction_batch: InteractionIn(
        user_id="u:1", course_id="c:1", type="rate", value=4
    ).to_record(NOW),
    TaskType.model_retrain: RetrainItem().model_dump(mode="json"),
}


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings(
        write_queue="test.writes", maintenance_queue="test.maint", training_queue="test.train"
    )


def test_every_task_type_has_one_kind_and_the_ledger_accepts_it() -> None:
    assert set(KINDS) == set(TaskType)
    assert set(TASK_TYPES) == {task_type.value for task_type in TaskType}


def test_each_kind_is_routed_to_a_declared_queue(settings: Settings) -> None:
    app = build_celery(settings)
    declared = {queue.name for queue in app.conf.task_queues}
    for kind in KINDS.values():
        queue = kind.queue(settings)
        assert queue in declared
        assert app.conf.task_routes[kind.task] == {"queue": queue, "routing_key": queue}
    # Learner writes share the write queue with courses; a retrain never waits behind them.
    assert KINDS[TaskType.learner_upsert].queue(settings) == "test.writes"
    assert KINDS[TaskType.course_patch].queue(settings) == "test.writes"
    assert KINDS[TaskType.model_retrain].queue(settings) == "test.train"


def test_the_celery_task_names_on_the_wire_are_unchanged() -> None:
    # Queued messages and deployed workers carry these names.
    names = {task_type: kind.task for task_type, kind in KINDS.items()}
    assert names == {
        TaskType.course_upsert: "coursewise.courses.apply_writes",
        TaskType.course_bulk_upsert: "coursewise.courses.apply_writes",
        TaskType.course_patch: "coursewise.courses.apply_writes",
        TaskType.course_delete: "coursewise.courses.apply_writes",
        TaskType.learner_upsert: "coursewise.learners.apply_writes",
        TaskType.learner_delete: "coursewise.learners.apply_writes",
        TaskType.interaction_batch: "coursewise.learners.apply_writes",
        TaskType.model_retrain: "coursewise.training.train_model",
    }


def test_the_workers_register_every_kinds_task() -> None:
    from workers.celery_app import celery_app

    for module in celery_app.conf.include:
        importlib.import_module(module)
    for kind in KINDS.values():
        assert kind.module in celery_app.conf.include
        assert kind.task in celery_app.tasks


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str]]] = []

    def send_task(self, name: str, args: list[str], **_: Any) -> None:
        self.sent.append((name, args))


@pytest.mark.parametrize("task_type", list(TaskType))
def test_a_write_is_published_to_its_kinds_task(task_type: TaskType) -> None:
    app = _Recorder()
    task_id = uuid.uuid4()
    publish_write(app, task_id, task_type.value)
    assert app.sent == [(KINDS[task_type].task, [str(task_id)])]


@pytest.mark.parametrize("task_type", list(TaskType))
def test_what_the_api_writes_the_worker_reads_back(task_type: TaskType) -> None:
    kind = KINDS[task_type]
    items, errors = read_items(kind, [API_ITEMS[task_type]])
    assert errors == []
    assert [index for index, _ in items] == [0]
    assert isinstance(items[0][1], kind.item)
    # Nothing is lost between the two: the item model holds every field the API wrote.
    assert items[0][1].model_dump(mode="json").keys() >= API_ITEMS[task_type].keys()


def test_erased_items_are_skipped_and_unreadable_ones_reported() -> None:
    kind = KINDS[TaskType.course_upsert]
    good = API_ITEMS[TaskType.course_upsert]
    items, errors = read_items(kind, [good, {"id": "c:9", "title": ""}, {"erased": True}])
    assert [index for index, _ in items] == [0]
    assert [(e.index, e.item_id, e.course_id, e.code) for e in errors] == [
        (1, "c:9", "c:9", "invalid_course")
    ]
    interactions = KINDS[TaskType.interaction_batch]
    _, errors = read_items(interactions, [{"user_id": "u:1", "course_id": "c:1"}])
    assert [(e.item_id, e.course_id, e.code) for e in errors] == [("u:1", "c:1", "invalid_item")]


def test_item_errors_say_id_on_the_wire_and_read_old_rows() -> None:
    error = ItemError(index=3, item_id="u:1", course_id="c:1", code="x", reason="y")
    assert error.model_dump(mode="json") == {
        "index": 3,
        "id": "u:1",
        "course_id": "c:1",
        "code": "x",
        "reason": "y",
    }
    # Recorded before `id` existed.
    old = ItemError.model_validate({"index": 0, "course_id": "c:1", "code": "x", "reason": "y"})
    assert (old.item_id, old.course_id) == (None, "c:1")
