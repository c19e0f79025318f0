"""The Milvus collection of course vectors: schema, entities, string literals, and the operations
both the API (async client) and the workers (sync client) perform."""

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymilvus import AsyncMilvusClient, CollectionSchema, DataType, MilvusClient
from pymilvus.exceptions import MilvusException

from shared.catalog.fields import MILVUS, MilvusScalar
from shared.settings import Settings

T = TypeVar("T")

# Beside each vector: the version and content hash it was built from, and the course fields that
# search filters on (shared/catalog/fields.py says which).
SCALAR_FIELDS = ["version", "content_hash", *MILVUS]


def client_kwargs(settings: Settings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "uri": settings.milvus_uri,
        "timeout": settings.milvus_timeout_s,
        # gRPC servers refuse keepalive pings more frequent than they allow (5 min by default,
        # which Milvus Lite keeps) with GOAWAY "too many pings", dropping the connection.
        "grpc_options": {"grpc.keepalive_time_ms": settings.milvus_keepalive_s * 1000},
    }
    if settings.milvus_token is not None:
        kwargs["token"] = settings.milvus_token.get_secret_value()
    return kwargs


def connect(settings: Settings) -> MilvusClient:
    return MilvusClient(**client_kwargs(settings))


def _milvus_type(scalar: MilvusScalar) -> dict[str, Any]:
    if scalar.kind == "varchar":
        return {"datatype": DataType.VARCHAR, "max_length": scalar.max_length, "nullable": True}
    if scalar.kind == "double":
        return {"datatype": DataType.DOUBLE, "nullable": True}
    return {
        "datatype": DataType.ARRAY,
        "element_type": DataType.VARCHAR,
        "max_capacity": scalar.max_capacity,
        "max_length": scalar.max_length,
    }


def course_schema(dim: int) -> CollectionSchema:
    """A vector per course with the fields search filters on (the course collection and the
    ALS item-factor collections share it, so one filter expression serves both)."""
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=200)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("version", DataType.INT64)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
    for name, scalar in MILVUS.items():
        schema.add_field(name, **_milvus_type(scalar))
    return schema


def ensure_collection(client: MilvusClient, name: str, dim: int) -> None:
    """Create the collection and its index if missing (idempotent; races are tolerated)."""
    if client.has_collection(name):
        client.load_collection(name)
        return
    schema = course_schema(dim)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
    try:
        # Strong consistency: a course marked indexed is searchable by the next request.
        client.create_collection(
            name, schema=schema, index_params=index, consistency_level="Strong"
        )
    except MilvusException:
        if not client.has_collection(name):
            raise
    client.load_collection(name)


def is_not_loaded(exc: BaseException) -> bool:
    """The collection exists but is not loaded (e.g. after the Milvus server restarted)."""
    message = str(getattr(exc, "message", exc)).lower()
    return isinstance(exc, MilvusException) and ("released" in message or "not loaded" in message)


def loaded(client: MilvusClient, collection: str, call: Callable[[], T]) -> T:
    """Run a Milvus call, loading the collection and trying once more if it was released."""
    try:
        return call()
    except MilvusException as exc:
        if not is_not_loaded(exc):
            raise
        client.load_collection(collection)
        return call()


async def loaded_async(
    client: AsyncMilvusClient, collection: str, call: Callable[[], Awaitable[T]]
) -> T:
    try:
        return await call()
    except MilvusException as exc:
        if not is_not_loaded(exc):
            raise
        await client.load_collection(collection)
        return await call()


def literal(value: str) -> str:
    """A Milvus string literal (JSON escaping is what Milvus's expression grammar accepts)."""
    return json.dumps(value, ensure_ascii=False)


def _scalar(value: Any, scalar: MilvusScalar) -> Any:
    if scalar.kind == "varchar_array":
        return list(value or [])[: scalar.max_capacity]
    return value


def entity(
    record: dict[str, Any], vector: list[float], version: int, content_hash: str
) -> dict[str, Any]:
    """A course record as the collection stores it."""
    row: dict[str, Any] = {
        "id": record["id"],
        "vector": vector,
        "version": version,
        "content_hash": content_hash,
    }
    for name, scalar in MILVUS.items():
        row[name] = _scalar(record.get(name), scalar)
    return row
