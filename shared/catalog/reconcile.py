"""Reconciliation: find courses whose Milvus entry is missing, stale or orphaned, and repair
them. PostgreSQL is the source of truth; the repair goes through the same indexer as writes."""

import logging
from dataclasses import asdict, dataclass

from pymilvus import MilvusClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.catalog.indexing import CourseIndexer
from shared.catalog.models import Course
from shared.catalog.writes import chunked
from shared.db import transaction

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    checked: int = 0
    missing: int = 0  # live in PostgreSQL, absent from Milvus
    stale: int = 0  # in Milvus at another version than PostgreSQL's
    orphaned: int = 0  # in Milvus, deleted or unknown in PostgreSQL
    unindexed: int = 0  # marked pending/failed in PostgreSQL (a write whose indexing gave up)
    repaired: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def milvus_versions(milvus: MilvusClient, collection: str, batch: int = 1000) -> dict[str, int]:
    iterator = milvus.query_iterator(
        collection, batch_size=batch, filter="", output_fields=["version"]
    )
    versions: dict[str, int] = {}
    try:
        while rows := iterator.next():
            versions.update({row["id"]: int(row["version"]) for row in rows})
    finally:
        iterator.close()
    return versions


async def reconcile(
    sessionmaker: async_sessionmaker[AsyncSession],
    milvus: MilvusClient,
    collection: str,
    indexer: CourseIndexer,
    *,
    batch: int = 1000,
) -> ReconcileReport:
    report = ReconcileReport()
    milvus.load_collection(collection)  # a no-op when loaded; needed after a Milvus restart
    in_milvus = milvus_versions(milvus, collection)
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(
                    Course.id,
                    Course.version,
                    Course.deleted_at.is_(None),
                    Course.index_state,
                    Course.indexed_version,
                )
            )
        ).all()
    report.checked = len(rows)
    to_sync: set[str] = set()
    for course_id, version, is_live, state, indexed_version in rows:
        if state != "indexed" or indexed_version != version:
            report.unindexed += 1
            to_sync.add(course_id)
        elif is_live and course_id not in in_milvus:
            report.missing += 1
            to_sync.add(course_id)
        elif is_live and in_milvus[course_id] != version:
            report.stale += 1
            to_sync.add(course_id)
        elif not is_live and course_id in in_milvus:
            report.orphaned += 1
            to_sync.add(course_id)
    known = {row[0] for row in rows}
    never_existed = [course_id for course_id in in_milvus if course_id not in known]
    if never_existed:  # no row at all: nothing in PostgreSQL will ever sync them
        milvus.delete(collection, ids=never_existed)
        report.orphaned += len(never_existed)
        report.repaired += len(never_existed)

    # Rows PostgreSQL believes indexed must be marked pending, or the indexer would skip them.
    for ids in chunked(sorted(to_sync), batch):
        async with transaction(sessionmaker) as session:
            await session.execute(
                update(Course).where(Course.id.in_(ids)).values(index_state="pending")
            )
        result = await indexer.sync(ids)
        report.repaired += result.upserted + result.removed
    if report.repaired:
        log.warning("reconciliation repaired the index: %s", report.as_dict())
    return report
