"""finding invoices: the payer's name and a search text on invoices, indexed

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 11:00:00

"""
import json

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


SORT_INDEXES = (('ix_invoices_total_seq', 'total'), ('ix_invoices_due_seq', 'due_date'),
                ('ix_invoices_service_seq', 'service_date'), ('ix_invoices_patient_name_seq', 'patient_name'),
                ('ix_invoices_number_seq', 'number'))


def _search_text(number, patient_id, patient_name, bill_to, booking_id):
    # As billing/invoice_search.search_text builds it (a copy: a migration never imports the app).
    payer = bill_to if isinstance(bill_to, dict) else json.loads(bill_to) if bill_to else {}
    parts = (number, patient_id, patient_name, payer.get("name"), payer.get("reference"), booking_id)
    return "\n".join(str(p).strip().lower() for p in parts if p)[:600]


def upgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payer_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('search_text', sa.Text(), server_default='', nullable=False))
    invoices = sa.table('invoices', sa.column('seq', sa.Integer), sa.column('number', sa.String),
                        sa.column('patient_id', sa.String), sa.column('patient_name', sa.String),
                        sa.column('bill_to', sa.JSON), sa.column('booking_id', sa.String),
                        sa.column('payer_name', sa.String), sa.column('search_text', sa.Text))
    bind = op.get_bind()
    last = 0
    while True:  # in batches, so a large table never sits in memory at once
        rows = bind.execute(sa.select(invoices.c.seq, invoices.c.number, invoices.c.patient_id,
                                      invoices.c.patient_name, invoices.c.bill_to, invoices.c.booking_id)
                            .where(invoices.c.seq > last).order_by(invoices.c.seq).limit(1000)).all()
        if not rows:
            break
        for seq, number, patient_id, patient_name, bill_to, booking_id in rows:
            payer = bill_to if isinstance(bill_to, dict) else json.loads(bill_to) if bill_to else {}
            bind.execute(invoices.update().where(invoices.c.seq == seq).values(
                payer_name=(payer.get("name") or None),
                search_text=_search_text(number, patient_id, patient_name, payer, booking_id)))
        last = rows[-1][0]
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index('ix_invoices_payer_seq', ['payer_name', 'seq'], unique=False)
        for name, column in SORT_INDEXES:
            batch_op.create_index(name, [column, 'seq'], unique=False)
        batch_op.create_index('ix_invoices_search', ['search_text'], unique=False, postgresql_using='gin',
                              postgresql_ops={'search_text': 'gin_trgm_ops'})


def downgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_search', postgresql_using='gin')
        for name, _ in SORT_INDEXES:
            batch_op.drop_index(name)
        batch_op.drop_index('ix_invoices_payer_seq')
        batch_op.drop_column('search_text')
        batch_op.drop_column('payer_name')
