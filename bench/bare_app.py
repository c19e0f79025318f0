"""The limit for reads by id: a bare FastAPI JSON endpoint with a course-sized answer, served by
the same uvicorn command line as the API (same processes, flags and loop)."""

from typing import Any

from fastapi import FastAPI

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
