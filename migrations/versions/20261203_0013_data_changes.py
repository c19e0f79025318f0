"""count changes to courses and interactions (what read-side memos are keyed by)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:00:00

One row, `data_changes.changes`, raised by every statement that changes course or interaction
rows, in the same transaction, whichever code path wrote them. A reader that sees the same
number sees the same rows, so what it computed from them (popularity, which courses' embeddings
Milvus holds) can be kept under that number. It replaces `max(id)`, `count(*)` and
`max(version)`, which were a scan of both tables on every recommendation and, with concurrent
writers committing out of id order, could repeat while the rows changed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION coursewise_count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' OR EXISTS (SELECT 1 FROM changed) THEN
        UPDATE data_changes SET changes = changes + 1 WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$
"""

# Transition tables allow one event per trigger (and none on TRUNCATE), hence four a table.
EVENTS = {"insert": ("INSERT", "NEW"), "update": ("UPDATE", "NEW"), "delete": ("DELETE", "OLD")}
TABLES = ("courses", "interactions")


def upgrade() -> None:
    op.create_table(
        "data_changes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("changes", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_data_changes_one_row")),
    )
    op.execute("INSERT INTO data_changes (id, changes) VALUES (1, 0)")
    op.execute(FUNCTION)
    for table in TABLES:
        for name, (event, transition) in EVENTS.items():
            op.execute(
                f"CREATE TRIGGER {table}_count_{name} AFTER {event} ON {table} "
                f"REFERENCING {transition} TABLE AS changed FOR EACH STATEMENT "
                "EXECUTE FUNCTION coursewise_count_changes()"
            )
        op.execute(
            f"CREATE TRIGGER {table}_count_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION coursewise_count_changes()"
        )


def downgrade() -> None:
    for table in TABLES:
        for name in (*EVENTS, "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_count_{name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS coursewise_count_changes()")
    op.drop_table("data_changes")
