"""the dashboard's and aged debt's covering index also carries credit_applied and the payer

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 11:30:00

Credit notes (0009) made what is due total - amount_paid - credit_applied, and aged debt
(0011) groups by payer: both read columns the index didn't carry, so PostgreSQL went back
to every open invoice's row (dashboard 49 → 85 ms, aged debt 61 ms at 100,000 invoices).
INCLUDE is PostgreSQL's; on SQLite the index is recreated as it was.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_status_due')
        batch_op.create_index('ix_invoices_status_due', ['status', 'due_date'], unique=False, postgresql_include=[
            'total', 'amount_paid', 'credit_applied', 'issued_on', 'payer_name', 'patient_id', 'patient_name'])


def downgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_status_due')
        batch_op.create_index('ix_invoices_status_due', ['status', 'due_date'], unique=False,
                              postgresql_include=['total', 'amount_paid', 'issued_on'])
