"""tasks: a `cancelled` status (POST /v1/tasks/{id}/cancel)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 14:00:00

A cancelled task is finished: the sweeper never re-publishes it, a worker's claim (a conditional
UPDATE on `queued`/`processing`) never takes it, and retention prunes it like the others.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_tasks_status"), "tasks", type_="check")
    op.create_check_constraint(
        op.f("ck_tasks_status"),
        "tasks",
        "status IN ('queued', 'processing', 'succeeded', 'failed', 'cancelled')",
    )
    op.execute("DROP INDEX ix_tasks_finished_at")
    op.execute(
        "CREATE INDEX ix_tasks_finished_at ON tasks (finished_at) "
        "WHERE status IN ('succeeded', 'failed', 'cancelled')"
    )


def downgrade() -> None:
    op.execute("DELETE FROM tasks WHERE status = 'cancelled'")
    op.execute("DROP INDEX ix_tasks_finished_at")
    op.execute(
        "CREATE INDEX ix_tasks_finished_at ON tasks (finished_at) "
        "WHERE status IN ('succeeded', 'failed')"
    )
    op.drop_constraint(op.f("ck_tasks_status"), "tasks", type_="check")
    op.create_check_constraint(
        op.f("ck_tasks_status"),
        "tasks",
        "status IN ('queued', 'processing', 'succeeded', 'failed')",
    )
