"""Milvus collections of ALS item factors, one per model version (inner product: a learner's
factor vector dotted with an item's is the model's score). Scalar fields mirror the course
collection's so the same filter expressions apply."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from pymilvus import MilvusClient

from shared.milvus import course_schema, entity


def collection_name(base: str, version: int) -> str:
    return f"{base}_als_v{version}"


def create(client: MilvusClient, name: str, dim: int) -> None:
    if client.has_collection(name):
        client.drop_collection(name)
    schema = course_schema(dim)
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
