"""purchase order notes (expand: a nullable column the previous release ignores)

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("purchase_orders", sa.Column("notes", sa.Text, nullable=True))


def downgrade():
    op.drop_column("purchase_orders", "notes")
