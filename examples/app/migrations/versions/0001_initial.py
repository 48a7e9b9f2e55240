"""initial schema: runbook 002's six tables, runbook 003's four, purchase orders

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id():
    return sa.Column("id", sa.BigInteger, primary_key=True)


def _created():
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False,
                     server_default=sa.func.now())


def upgrade():
    # Runbook 002 (PR-023): users, signals, approvals, positions, audit_logs, reconciliation_logs.
    op.create_table("users", _id(), sa.Column("email", sa.String(255), nullable=False, unique=True),
                    sa.Column("role", sa.String(32), nullable=False, server_default="trader"), _created())
    op.create_table("signals", _id(), sa.Column("symbol", sa.String(32), nullable=False),
                    sa.Column("side", sa.String(4), nullable=False),
                    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id")), _created())
    op.create_table("approvals", _id(),
                    sa.Column("signal_id", sa.BigInteger, sa.ForeignKey("signals.id"), nullable=False),
                    sa.Column("approved_by", sa.BigInteger, sa.ForeignKey("users.id")),
                    sa.Column("decision", sa.String(16), nullable=False), _created())
    op.create_table("positions", _id(), sa.Column("symbol", sa.String(32), nullable=False, index=True),
                    sa.Column("quantity", sa.Numeric(18, 6), nullable=False),
                    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), index=True), _created())
    op.create_table("audit_logs", _id(), sa.Column("actor", sa.String(255), nullable=False),
                    sa.Column("action", sa.String(255), nullable=False), sa.Column("detail", sa.Text),
                    _created())
    op.create_table("reconciliation_logs", _id(), sa.Column("position_id", sa.BigInteger,
                    sa.ForeignKey("positions.id")), sa.Column("status", sa.String(16), nullable=False),
                    sa.Column("delta", sa.Numeric(18, 6)), _created())
    op.create_index("ix_reconciliation_logs_created_at", "reconciliation_logs", ["created_at"])
    # Runbook 003 (portfolio manager): portfolio_state, portfolio_positions,
    # instance_heartbeat, leadership_history.
    op.create_table("portfolio_state", _id(), sa.Column("equity", sa.Numeric(18, 2), nullable=False),
                    sa.Column("risk_pct", sa.Numeric(6, 3), nullable=False, server_default="0"),
                    _created())
    op.create_table("portfolio_positions", _id(), sa.Column("symbol", sa.String(32), nullable=False),
                    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
                    sa.Column("quantity", sa.Numeric(18, 6), nullable=False), _created())
    op.create_table("instance_heartbeat", sa.Column("instance_id", sa.String(64), primary_key=True),
                    sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False,
                              server_default=sa.func.now()))
    op.create_table("leadership_history", _id(), sa.Column("instance_id", sa.String(64), nullable=False),
                    sa.Column("event", sa.String(32), nullable=False), _created())
    # Runbook 004: purchase orders with their companies and products.
    op.create_table("companies", _id(), sa.Column("name", sa.String(255), nullable=False))
    op.create_table("products", _id(), sa.Column("name", sa.String(255), nullable=False))
    op.create_table("purchase_orders", _id(),
                    sa.Column("buyer_company_id", sa.BigInteger, sa.ForeignKey("companies.id"), nullable=False),
                    sa.Column("seller_company_id", sa.BigInteger, sa.ForeignKey("companies.id"), nullable=False),
                    sa.Column("product_id", sa.BigInteger, sa.ForeignKey("products.id"), nullable=False),
                    sa.Column("quantity", sa.Integer, nullable=False, server_default="1"),
                    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
                    _created())
    op.execute("INSERT INTO companies (name) VALUES ('Acme Buyer'), ('Globex Seller')")
    op.execute("INSERT INTO products (name) VALUES ('Widget'), ('Gadget')")


def downgrade():
    for table in ("purchase_orders", "products", "companies", "leadership_history",
                  "instance_heartbeat", "portfolio_positions", "portfolio_state",
                  "reconciliation_logs", "audit_logs", "positions", "approvals", "signals", "users"):
        op.drop_table(table)
