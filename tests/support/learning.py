"""A small catalog and learner community for the learner and recommendation tests."""

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support.http import accept, wait_task

TOPICS = {
    "data": [
        ("Python for data analysis", "Load, clean and analyse data with pandas and numpy."),
        ("Statistics with Python", "Probability, distributions and hypothesis tests in Python."),
        ("Machine learning basics", "Regression, classification and model evaluation."),
        ("Deep learning with PyTorch", "Neural networks, training loops and GPUs."),
    ],
    "cooking": [
        ("Italian cooking at home", "Fresh pasta, risotto and classic Italian sauces."),
        ("Baking bread", "Sourdough starters, kneading and baking crusty loaves."),
        ("Vegetarian cuisine", "Seasonal vegetables, legumes and grains in everyday meals."),
        ("Knife skills for cooks", "Chopping, dicing and caring for kitchen knives."),
    ],
    "music": [
        ("Guitar for beginners", "Chords, strumming and your first songs on guitar."),
        ("Music theory", "Scales, intervals, harmony and reading sheet music."),
        ("Piano fundamentals", "Posture, scales and simple pieces on the piano."),
        ("Songwriting", "Melody, lyrics and structure of a song."),
    ],
}
LEVELS = ["beginner", "intermediate", "advanced", "beginner"]


@dataclass
class Community:
    prefix: str
    courses: list[dict[str, Any]]

    def ids(self, topic: str) -> list[str]:
        return [c["id"] for c in self.courses if c["metadata"]["topic"] == topic]

    def learner(self, name: str) -> str:
        return f"{self.prefix}-{name}"


def build(api: httpx.Client) -> Community:
    prefix = f"t{uuid.uuid4().hex[:6]}"
    courses = []
    for topic, entries in TOPICS.items():
        for number, (title, description) in enumerate(entries):
            course: dict[str, Any] = {
                "id": f"{prefix}:{topic}-{number}",
                "title": title,
                "description": description,
                "level": LEVELS[number],
                "language": "en" if number % 2 == 0 else "es",
                "metadata": {"topic": topic},
            }
            if number == 3:
                course.update(price=49.0, currency="USD")
            courses.append(course)
    task = wait_task(api, accept(api.post("/v1/courses/bulk", json=courses)))
    assert task["status"] == "succeeded", task
    community = Community(prefix, courses)
    # Learners who stick to one topic, three courses each: every course is about as popular as
    # any other (4 or 5 learners), so what decides is the learner's own history.
    interactions = []
    for topic in TOPICS:
        ids = community.ids(topic)
        for n in range(6):
            learner = community.learner(f"{topic}-fan-{n}")
            for k in range(3):
                course_id = ids[(n + k) % len(ids)]
                interactions.append({"user_id": learner, "course_id": course_id, "type": "enroll"})
    task = wait_task(api, accept(api.post("/v1/interactions", json=interactions)))
    assert task["status"] == "succeeded" and task["counts"]["failed"] == 0, task
    return community


def retrain(api: httpx.Client) -> dict[str, Any]:
    task = wait_task(api, accept(api.post("/v1/admin/retrain")), timeout=180)
    assert task["status"] == "succeeded", task
    return task


def interact(api: httpx.Client, items: list[dict[str, Any]]) -> dict[str, Any]:
    return wait_task(api, accept(api.post("/v1/interactions", json=items)))


# A subject few learners take (in no other test's catalogue), beside subjects everyone takes:
# popularity alone never shows it.
NICHE = [
    ("Introduction to astronomy", "Stars, planets, galaxies and the night sky."),
    ("Observing with a telescope", "Choosing, aligning and using a telescope to observe the sky."),
    ("The solar system", "Planets, moons, asteroids and comets orbiting the Sun."),
    ("Stellar astrophysics", "How stars form, shine, evolve and die."),
    ("Cosmology", "The Big Bang, dark matter, dark energy and the expanding universe."),
    ("Astrophotography", "Photographing stars, nebulae and galaxies through a telescope."),
]
MAINSTREAM = [
    ("C++ programming", "Classes, templates, pointers and the standard library of C++."),
    ("Modern C++", "Move semantics, smart pointers and lambdas in C++17."),
    ("Data structures", "Arrays, linked lists, stacks, queues, trees and hash tables."),
    ("Algorithms", "Sorting, searching, graph algorithms and dynamic programming."),
    ("Operating systems", "Processes, threads, memory management and file systems."),
    ("Computer networks", "TCP/IP, routing, sockets and the layers of the internet."),
    ("Databases", "Relational models, SQL, indexes and transactions."),
    ("Compilers", "Lexing, parsing, type checking and code generation."),
    ("Discrete mathematics", "Logic, sets, combinatorics and graph theory."),
    ("Software engineering", "Requirements, design, testing and version control."),
    ("Java programming", "Objects, interfaces, collections and exceptions in Java."),
    ("Assembly language", "Registers, instructions and calling conventions on x86."),
]


def popular_elsewhere(api: httpx.Client, takers: int = 12) -> Community:
    """NICHE courses with one learner each, and MAINSTREAM courses that `takers` learners each
    took (more than any other test's courses): the most popular courses are all MAINSTREAM."""
    prefix = f"n{uuid.uuid4().hex[:6]}"
    courses: list[dict[str, Any]] = [
        {
            "id": f"{prefix}:{topic}-{number}",
            "title": title,
            "description": description,
            "metadata": {"topic": topic},
        }
        for topic, entries in (("niche", NICHE), ("mainstream", MAINSTREAM))
        for number, (title, description) in enumerate(entries)
    ]
    task = wait_task(api, accept(api.post("/v1/courses/bulk", json=courses)))
    assert task["status"] == "succeeded", task
    community = Community(prefix, courses)
    interactions = [
        {"user_id": community.learner(f"crowd-{n}"), "course_id": course_id, "type": "enroll"}
        for n in range(takers)
        for course_id in community.ids("mainstream")
    ] + [
        {"user_id": community.learner(f"few-{n}"), "course_id": course_id, "type": "enroll"}
        for n, course_id in enumerate(community.ids("niche"))
    ]
    task = interact(api, interactions)
    assert task["status"] == "succeeded" and task["counts"]["failed"] == 0, task
    return community
