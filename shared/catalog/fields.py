"""The course's fields, once: each with the roles it plays outside the pydantic models.

The contract's models (shared/catalog/schemas.py) stay the source of validation (bounds, patterns);
this table says where each field goes. The columns the repository writes, the record a row is read
back into (patches, the indexer, training), the Milvus scalar fields and entities, and the ingest
command's field map are all derived from it. tests/unit/test_course_fields.py checks that it names
exactly the contract's fields.

No heavy imports here: the ingest command imports it.
"""

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class MilvusScalar:
    """How a field is stored beside the vector in Milvus (shared/milvus.py maps it to a type)."""

    kind: Literal["varchar", "double", "varchar_array"]
    max_length: int | None = None  # varchar, and each element of a varchar array
    max_capacity: int | None = None  # varchar_array

    @property
    def nullable(self) -> bool:
        # An absent list is stored as an empty one, never as null (as in PostgreSQL).
        return self.kind != "varchar_array"


@dataclass(frozen=True)
class CourseField:
    name: str  # in the JSON contract, and the PostgreSQL column
    # What a catalogue file's cell is read as (cli/ingest.py).
    kind: Literal["text", "number", "list", "json"] = "text"
    # Part of the embedded text: changing it changes content_hash (schemas.embedding_text).
    content: bool = False
    # Stored in Milvus too, where search filters on it.
    milvus: MilvusScalar | None = None
    # The attribute on shared.catalog.models.Course, where it differs from the name.
    attribute: str | None = None
    # Stored when the field is absent (a list or an object is never null).
    empty: Literal["list", "object"] | None = None

    @property
    def attr(self) -> str:
        return self.attribute or self.name

    def empty_value(self) -> Any:
        return [] if self.empty == "list" else {} if self.empty == "object" else None

    def stored(self, record: dict[str, Any]) -> Any:
        """This field's value in a record, as a column holds it."""
        value = record.get(self.name)
        return self.empty_value() if value is None else value


FIELDS: tuple[CourseField, ...] = (
    CourseField("id"),
    CourseField("title", content=True),
    CourseField("description", content=True),
    CourseField("provider", milvus=MilvusScalar("varchar", max_length=200)),
    CourseField("url"),
    CourseField("language", milvus=MilvusScalar("varchar", max_length=35)),
    CourseField("level", milvus=MilvusScalar("varchar", max_length=16)),
    # Doubles, as in PostgreSQL: a 32-bit float rounds 1.1 up, so `max_duration=1.1` would miss
    # a course of 1.1 hours in Milvus only (and a price of 1e-46 would be free there).
    CourseField("duration_hours", kind="number", milvus=MilvusScalar("double")),
    CourseField(
        "skills",
        kind="list",
        content=True,
        milvus=MilvusScalar("varchar_array", max_length=100, max_capacity=64),
        empty="list",
    ),
    CourseField("price", kind="number", milvus=MilvusScalar("double")),
    CourseField("currency"),
    CourseField("rating", kind="number"),
    CourseField("metadata", kind="json", attribute="metadata_", empty="object"),
)
BY_NAME: dict[str, CourseField] = {f.name: f for f in FIELDS}
NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
# Everything a write sets besides the key (the columns an upsert overwrites).
WRITTEN: tuple[CourseField, ...] = tuple(f for f in FIELDS if f.name != "id")
MILVUS: dict[str, MilvusScalar] = {f.name: f.milvus for f in FIELDS if f.milvus is not None}


def course_record(row: Any) -> dict[str, Any]:
    """A `courses` row as the contract's record (what a patch merges into, what is embedded and
    indexed)."""
    return {f.name: getattr(row, f.attr) for f in FIELDS}
