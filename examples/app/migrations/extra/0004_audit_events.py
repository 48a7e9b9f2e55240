"""audit events table (expand: a new table the previous release does not use)

Revision ID: 0004_audit
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_audit"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("audit_events",
                    sa.Column("id", sa.BigInteger, primary_key=True),
                    sa.Column("kind", sa.String(64), nullable=False),
                    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                              server_default=sa.func.now()))
    op.create_index("ix_audit_events_kind", "audit_events", ["kind"])


def downgrade():
    op.drop_index("ix_audit_events_kind", table_name="audit_events")
    op.drop_table("audit_events")
