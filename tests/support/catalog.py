"""Course bodies for writes, and ids no other test uses."""

import uuid


def course(course_id: str, **fields: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": course_id,
        "title": "Practical Bread Baking",
        "description": "Knead, proof and bake sourdough and yeasted breads in a home oven.",
        "provider": "Test Kitchen",
        "level": "beginner",
        "language": "en",
        "skills": ["Baking", "fermentation"],
        "duration_hours": 6,
    }
    body.update(fields)
    return body


def unique_id(prefix: str = "it") -> str:
    return f"{prefix}:{uuid.uuid4().hex[:10]}"
