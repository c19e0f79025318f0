"""Milvus collections of ALS item factors, one per model version (inner product: a learner's
factor vector dotted with an item's is the model's score). Scalar fields mirror the course
collection's so the same filter expressions apply."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from shared.milvus import entity


def collection_name(base: str, version: int) -> str:
    return f"{base}_als_v{version}"


def create(client: MilvusClient, name: str, dim: int) -> None:
    if client.has_collection(name):
        client.drop_collection(name)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=200)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field("version", DataType.INT64)
    schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
    schema.add_field("provider", DataType.VARCHAR, max_length=200, nullable=True)
    schema.add_field("level", DataType.VARCHAR, max_length=16, nullable=True)
    schema.add_field("language", DataType.VARCHAR, max_length=35, nullable=True)
    schema.add_field(
        "skills", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=64, max_length=100
    )
    schema.add_field("duration_hours", DataType.FLOAT, nullable=True)
    schema.add_field("price", DataType.FLOAT, nullable=True)
    index = client.prepare_index_params()
    # FLAT: item counts are small and an exact inner product keeps ALS scores exact.
    index.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    client.load_collection(name)


def insert(
    client: MilvusClient,
    name: str,
    records: Sequence[dict[str, Any]],
    vectors: np.ndarray,
    model_version: int,
    batch: int = 1000,
) -> None:
    entities = [
        entity(record, vector.astype(np.float32).tolist(), model_version, "")
        for record, vector in zip(records, vectors, strict=True)
    ]
    for start in range(0, len(entities), batch):
        client.insert(name, entities[start : start + batch])
    client.flush(name)
