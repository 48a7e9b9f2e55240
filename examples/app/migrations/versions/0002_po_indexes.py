"""purchase order indexes (runbook 004 week 1: the five idx_po_* indexes)

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {
    "idx_po_buyer_company_id": "buyer_company_id",
    "idx_po_seller_company_id": "seller_company_id",
    "idx_po_product_id": "product_id",
    "idx_po_status": "status",
    "idx_po_created_at": "created_at",
}


def upgrade():
    for name, column in INDEXES.items():
        op.create_index(name, "purchase_orders", [column])


def downgrade():
    # Runbook 004's database rollback: drop the indexes.
    for name in INDEXES:
        op.drop_index(name, table_name="purchase_orders")
