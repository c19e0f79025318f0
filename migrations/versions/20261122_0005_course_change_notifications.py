"""notify listeners of changed courses (the API's course cache)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 06:00:00

Every statement that inserts, updates or deletes course rows sends the changed ids on the
channel `coursewise_courses` (at commit, as PostgreSQL delivers notifications), so each API
process can drop what it cached, whichever code path wrote the rows. A payload that would pass
PostgreSQL's 8,000-byte limit becomes "*": forget everything.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION coursewise_notify_courses() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids text;
BEGIN
    SELECT string_agg(DISTINCT id, E'\\n') INTO ids FROM changed;
    IF ids IS NOT NULL THEN
        IF octet_length(ids) > 7000 THEN
            ids := '*';
        END IF;
        PERFORM pg_notify('coursewise_courses', ids);
    END IF;
    RETURN NULL;
END
$$
"""

TRIGGERS = {
    "courses_notify_insert": ("INSERT", "NEW"),
    "courses_notify_update": ("UPDATE", "NEW"),
    "courses_notify_delete": ("DELETE", "OLD"),
}


def upgrade() -> None:
    op.execute(FUNCTION)
    # Transition tables allow one event per trigger, hence three.
    for name, (event, table) in TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON courses "
            f"REFERENCING {table} TABLE AS changed FOR EACH STATEMENT "
            "EXECUTE FUNCTION coursewise_notify_courses()"
        )


def downgrade() -> None:
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON courses")
    op.execute("DROP FUNCTION IF EXISTS coursewise_notify_courses()")
