"""The explorer's only way to the data: the read API over HTTP, with the API key when one is set.

Every call answers a `Result`: the body, or a sentence a person can read when the API could not
help (not found, not indexed yet, not available), so pages never show a traceback."""

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

LEVELS = ("beginner", "intermediate", "advanced", "mixed")
# What GET /v1/search offers (docs/api.md, Search).
SORTS = ("relevance", "rating", "newest", "duration", "price")
FACETS = ("level", "language", "provider", "skills", "free", "duration")


@dataclass
class Result:
    data: Any = None
    problem: str | None = None
    status: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class ReadApi:
    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, timeout: float = 20
    ) -> None:
        base_url = base_url or os.environ.get(
            "COURSEWISE_EXPLORER_API_URL", "http://127.0.0.1:8000"
        )
        api_key = api_key or os.environ.get("COURSEWISE_API_KEY")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base_url = base_url.rstrip("/")
        self.client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Result:
        try:
            response = self.client.get(
                path, params={k: v for k, v in (params or {}).items() if v not in (None, "", False)}
            )
        except httpx.HTTPError as exc:
            return Result(
                problem=f"The catalogue API at {self.base_url} is unreachable "
                f"({type(exc).__name__})."
            )
        if response.status_code == 200:
            return Result(response.json(), status=200)
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.reason_phrase
        return Result(problem=message, status=response.status_code)

    def search(
        self,
        query: str,
        filters: dict[str, Any],
        *,
        sort: str = "relevance",
        facets: tuple[str, ...] = FACETS,
        semantic_ratio: float | None = None,
        limit: int = 20,
    ) -> Result:
        params = {
            "q": query,
            "limit": limit,
            "sort": sort,
            "facets": ",".join(facets),
            "semantic_ratio": semantic_ratio,
            **filters,
        }
        return self._get("/v1/search", params)

    def suggest(self, query: str, limit: int = 5) -> Result:
        return self._get("/v1/search/suggest", {"q": query, "limit": limit})

    def browse(self, filters: dict[str, Any], limit: int = 20) -> Result:
        return self._get("/v1/courses", {"limit": limit, **filters})

    def course(self, course_id: str) -> Result:
        return self._get(f"/v1/courses/{_seg(course_id)}")

    def similar(self, course_id: str, limit: int = 8) -> Result:
        return self._get(f"/v1/courses/{_seg(course_id)}/similar", {"limit": limit})

    def learner(self, user_id: str) -> Result:
        return self._get(f"/v1/users/{_seg(user_id)}")

    def recommendations(self, user_id: str, limit: int = 10) -> Result:
        return self._get(f"/v1/users/{_seg(user_id)}/recommendations", {"limit": limit})


def _seg(value: str) -> str:
    return quote(value, safe=":@._-")
