"""shipments (BROKEN on purpose: fails half-way, after creating a table and a row)

The `bad-migration` release variant carries this revision so that tests and the demo can
prove a failing migration leaves the database at the previous revision.

Revision ID: 0004_bad
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_bad"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("shipments",
                    sa.Column("id", sa.BigInteger, primary_key=True),
                    sa.Column("purchase_order_id", sa.BigInteger, nullable=False))
    op.execute("INSERT INTO shipments (id, purchase_order_id) VALUES (1, 1)")
    # Half-way: this statement fails (no such column), and the revision's transaction
    # rolls back the table and the row above.
    op.execute("UPDATE purchase_orders SET shipped_at = now()")


def downgrade():
    op.drop_table("shipments")
