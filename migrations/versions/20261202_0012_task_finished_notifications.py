"""notify listeners of finished tasks (read-your-writes without a ledger query)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 17:30:00

Every statement that moves tasks into a terminal status (succeeded, failed, cancelled) sends
their versions (`seq`) on the channel `coursewise_tasks_finished`, at commit, whichever code
path finished them (a worker, the sweeper giving up, a cancel). Each API process notes them as
satisfied consistency tokens, so the first read carrying a token needs no query. A payload past
PostgreSQL's 8,000-byte limit is not sent: those tokens are checked in the ledger, as before.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION coursewise_notify_tasks_finished() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seqs text;
BEGIN
    SELECT string_agg(n.seq::text, E'\\n') INTO seqs
      FROM finished n JOIN before o ON o.id = n.id
     WHERE n.status IN ('succeeded', 'failed', 'cancelled')
       AND o.status NOT IN ('succeeded', 'failed', 'cancelled');
    IF seqs IS NOT NULL AND octet_length(seqs) <= 7000 THEN
        PERFORM pg_notify('coursewise_tasks_finished', seqs);
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(
        "CREATE TRIGGER tasks_notify_finished AFTER UPDATE ON tasks "
        "REFERENCING OLD TABLE AS before NEW TABLE AS finished FOR EACH STATEMENT "
        "EXECUTE FUNCTION coursewise_notify_tasks_finished()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS tasks_notify_finished ON tasks")
    op.execute("DROP FUNCTION IF EXISTS coursewise_notify_tasks_finished()")
