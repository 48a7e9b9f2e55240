"""A cache table whose downgrade forgets it (the "leaky" variant; empty downgrades are common).

Revision ID: 0004_leaky
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_leaky"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("po_cache", sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text))


def downgrade():
    pass  # the table stays behind: a downgrade that "succeeds" and leaves the schema changed
