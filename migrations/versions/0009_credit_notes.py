"""credit notes: their own gap-free series, and what they credited on each invoice

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 08:33:59.878441

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('credit_note_counters',
    sa.Column('year', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('year', name=op.f('pk_credit_note_counters'))
    )
    op.create_table('credit_notes',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('invoice_seq', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('memo', sa.Text(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('lines', sa.JSON(), nullable=False),
    sa.Column('product_amount', sa.BigInteger(), nullable=False),
    sa.Column('service_amount', sa.BigInteger(), nullable=False),
    sa.Column('subtotal', sa.BigInteger(), nullable=False),
    sa.Column('tax', sa.BigInteger(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('pre_payment_amount', sa.BigInteger(), nullable=False),
    sa.Column('post_payment_amount', sa.BigInteger(), nullable=False),
    sa.Column('refund_amount', sa.BigInteger(), nullable=False),
    sa.Column('out_of_band_amount', sa.BigInteger(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('request_key', sa.String(length=330), nullable=True),
    sa.CheckConstraint("reason IN ('duplicate', 'order_change', 'product_unsatisfactory', 'other')", name=op.f('ck_credit_notes_reason')),
    sa.ForeignKeyConstraint(['invoice_seq'], ['invoices.seq'], name=op.f('fk_credit_notes_invoice_seq_invoices')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_credit_notes')),
    sa.UniqueConstraint('id', name=op.f('uq_credit_notes_id')),
    sa.UniqueConstraint('number', name=op.f('uq_credit_notes_number')),
    sa.UniqueConstraint('request_key', name=op.f('uq_credit_notes_request_key'))
    )
    with op.batch_alter_table('credit_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_notes_invoice_seq'), ['invoice_seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_notes_issued_on'), ['issued_on'], unique=False)

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amount_credited', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('credit_applied', sa.BigInteger(), server_default='0', nullable=False))



def downgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('credit_applied')
        batch_op.drop_column('amount_credited')

    with op.batch_alter_table('credit_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_notes_issued_on'))
        batch_op.drop_index(batch_op.f('ix_credit_notes_invoice_seq'))

    op.drop_table('credit_notes')
    op.drop_table('credit_note_counters')
