"""money integrity: status CHECKs, refund rows written before Stripe is asked, the outbox

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 07:37:32.999576

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('outbox',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('once_key', sa.String(length=200), nullable=True),
    sa.Column('invoice_seq', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f('ck_outbox_status')),
    sa.ForeignKeyConstraint(['invoice_seq'], ['invoices.seq'], name=op.f('fk_outbox_invoice_seq_invoices')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_outbox')),
    sa.UniqueConstraint('id', name=op.f('uq_outbox_id')),
    sa.UniqueConstraint('once_key', name=op.f('uq_outbox_once_key'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_invoice_seq'), ['invoice_seq'], unique=False)
        batch_op.create_index('ix_outbox_status_available', ['status', 'available_at'], unique=False)

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attention', sa.Text(), nullable=True))

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='succeeded', nullable=False))
        batch_op.add_column(sa.Column('stripe_key', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('request_key', sa.String(length=330), nullable=True))
        batch_op.add_column(sa.Column('error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_refunds_request_key'), ['request_key'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_refunds_stripe_key'), ['stripe_key'])
        batch_op.create_check_constraint('status', "status IN ('pending', 'succeeded', 'failed')")

    # The values each status column may hold (billing/states.py lists them once).
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_check_constraint('status', "status IN ('draft', 'open', 'paid', 'void', 'uncollectible')")
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_check_constraint(
            'method', "method IN ('card_terminal', 'bank_transfer', 'cash', 'other', 'card_online')")
    with op.batch_alter_table('booking_events', schema=None) as batch_op:
        batch_op.create_check_constraint(
            'outcome', "outcome IN ('created', 'updated', 'finalized', 'voided', 'duplicate', 'stale', 'ignored', 'failed')")


def downgrade():
    for table, name in (('booking_events', 'outcome'), ('payments', 'method'), ('invoices', 'status')):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'ck_{table}_{name}'), type_='check')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_refunds_status'), type_='check')
        batch_op.drop_constraint(batch_op.f('uq_refunds_stripe_key'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_refunds_request_key'))
        batch_op.drop_column('completed_at')
        batch_op.drop_column('error')
        batch_op.drop_column('request_key')
        batch_op.drop_column('stripe_key')
        batch_op.drop_column('status')

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('attention')

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status_available')
        batch_op.drop_index(batch_op.f('ix_outbox_invoice_seq'))

    op.drop_table('outbox')
