"""learners, interactions and model versions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COURSE_TYPES = "'course.upsert', 'course.bulk_upsert', 'course.patch', 'course.delete'"
NEW_TYPES = "'learner.upsert', 'learner.delete', 'interaction.batch', 'model.retrain'"


def upgrade() -> None:
    op.create_table(
        "learners",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("interests", sa.Text(), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("language", sa.String(length=35), nullable=True),
        sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "level IN ('beginner', 'intermediate', 'advanced', 'mixed')",
            name=op.f("ck_learners_level"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learners")),
    )
    op.create_table(
        "interactions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("learner_id", sa.String(length=200), nullable=False),
        sa.Column("course_id", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "type IN ('view', 'enroll', 'complete', 'rate', 'bookmark')",
            name=op.f("ck_interactions_type"),
        ),
        sa.CheckConstraint(
            "(type = 'rate' AND value BETWEEN 1 AND 5) OR (type <> 'rate' AND value IS NULL)",
            name=op.f("ck_interactions_value"),
        ),
        sa.ForeignKeyConstraint(
            ["learner_id"],
            ["learners.id"],
            name=op.f("fk_interactions_learner_id_learners"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
    )
    op.create_index(
        "uq_interactions_learner_event", "interactions", ["learner_id", "event_id"], unique=True
    )
    op.create_index("ix_interactions_occurred_at", "interactions", ["occurred_at"])
    op.create_index("ix_interactions_course_id", "interactions", ["course_id"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("kind", sa.String(length=32), server_default=sa.text("'als'"), nullable=False),
        sa.Column(
            "state", sa.String(length=16), server_default=sa.text("'training'"), nullable=False
        ),
        sa.Column("collection", sa.String(length=255), nullable=True),
        sa.Column("factors", sa.Integer(), nullable=False),
        sa.Column(
            "params",
            sa.dialects.postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("learners", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("items", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("interactions", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("train_seconds", sa.Float(), nullable=True),
        sa.Column("gram", sa.LargeBinary(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('training', 'active', 'retired', 'failed')",
            name=op.f("ck_model_versions_state"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
    )
    op.create_index(
        "uq_model_versions_active",
        "model_versions",
        ["kind"],
        unique=True,
        postgresql_where=sa.text("state = 'active'"),
    )
    op.drop_constraint(op.f("ck_tasks_type"), "tasks", type_="check")
    op.create_check_constraint(
        op.f("ck_tasks_type"), "tasks", f"type IN ({COURSE_TYPES}, {NEW_TYPES})"
    )


def downgrade() -> None:
    op.execute(f"DELETE FROM tasks WHERE type IN ({NEW_TYPES})")
    op.drop_constraint(op.f("ck_tasks_type"), "tasks", type_="check")
    op.create_check_constraint(op.f("ck_tasks_type"), "tasks", f"type IN ({COURSE_TYPES})")
    op.drop_index("uq_model_versions_active", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_index("ix_interactions_course_id", table_name="interactions")
    op.drop_index("ix_interactions_occurred_at", table_name="interactions")
    op.drop_index("uq_interactions_learner_event", table_name="interactions")
    op.drop_table("interactions")
    op.drop_table("learners")
