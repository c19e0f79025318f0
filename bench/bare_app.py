"""Bare FastAPI endpoints served by the same uvicorn command line as the API (same processes,
flags and loop): the limit for reads by id (a course-sized JSON answer), and the framework's own
ceiling for writes (the same course body parsed and validated by the same model, answered 202
with a task id, with nothing recorded or published)."""

import uuid
from typing import Any

from fastapi import FastAPI, status

from shared.catalog.schemas import CourseIn
from shared.ledger.schemas import TaskAccepted, TaskStatus

app = FastAPI()

COURSE: dict[str, Any] = {
    "title": "Machine Learning in Production",
    "description": "Deploy, monitor and maintain machine learning systems. " * 18,
    "provider": "DeepLearning.AI",
    "level": "intermediate",
    "language": "en",
    "skills": ["Machine Learning", "MLOps", "Model Monitoring", "Data Pipelines"],
    "duration_hours": 24.0,
    "price": 0.0,
    "rating": 4.8,
    "url": "https://www.coursera.org/learn/introduction-to-machine-learning-in-production",
    "metadata": {},
    "version": 3,
    "index_state": "indexed",
    "created_at": "2026-11-22T05:00:00Z",
    "updated_at": "2026-11-22T05:00:00Z",
}


@app.get("/v1/courses/{course_id}")
async def course(course_id: str) -> dict[str, Any]:
    return {"id": course_id, **COURSE}


@app.post("/v1/courses", status_code=status.HTTP_202_ACCEPTED)
async def accept(course: CourseIn) -> TaskAccepted:
    course.to_record()
    task_id = uuid.uuid4()
    status_url = f"/v1/tasks/{task_id}"
    token = "ct1.0.bare"  # the bare app has no ledger: a token of the right size
    return TaskAccepted(
        task_id=task_id, status=TaskStatus.queued, status_url=status_url, consistency_token=token
    )
