"""Audits table, scoring-time flags on submissions, final-split baselines and protocol flag on testbeds.

Halves are no longer part of the bundle (format 2): the server assigns them under its own secret, so
the schema itself needs no halves column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("testbeds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("n_final", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("weak_final", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ceiling_final", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("teacher_on_test", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flags", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "audits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audits_submission_id"), ["submission_id"], unique=False)
    _append_only("audits")


def _append_only(table: str) -> None:
    """Refuse UPDATE and DELETE on ``table`` at the database level (a new audit supersedes an old one)."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    else:
        op.execute(
            f"CREATE FUNCTION {table}_append_only() RETURNS trigger AS $$ BEGIN "
            f"RAISE EXCEPTION '{table} is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audits_append_only ON audits")
        op.execute("DROP FUNCTION IF EXISTS audits_append_only()")
    with op.batch_alter_table("audits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audits_submission_id"))
    op.drop_table("audits")
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("flags")
    with op.batch_alter_table("testbeds", schema=None) as batch_op:
        batch_op.drop_column("teacher_on_test")
        batch_op.drop_column("ceiling_final")
        batch_op.drop_column("weak_final")
        batch_op.drop_column("n_final")
