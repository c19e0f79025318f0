"""recommendation lists: every served list, so an interaction can cite it

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 13:30:00

Each `GET /v1/users/{id}/recommendations` and `GET /v1/courses/{id}/similar` answer is recorded
with the id it carries (`recommendation_id`), for whom it was made (NULL for similar lists:
anyone may cite those), which strategy and model version made it, and the reason of each course.
`POST /v1/interactions` looks cited ids up before accepting: another learner's list is refused
(422), a course of the list is attributed to its reason (Prometheus counters). Old lists go with
the task retention sweep; a learner's go with the learner.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recommendation_lists",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("surface", sa.String(32), nullable=False),
        sa.Column("learner_id", sa.String(200), nullable=True),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("model_version", sa.BigInteger, nullable=True),
        sa.Column("reasons", JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )
    op.create_index("ix_recommendation_lists_learner_id", "recommendation_lists", ["learner_id"])
    op.create_index("ix_recommendation_lists_created_at", "recommendation_lists", ["created_at"])


def downgrade() -> None:
    op.drop_table("recommendation_lists")
