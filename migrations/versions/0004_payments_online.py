"""payments online

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 11:40:25.293063

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    
    op.create_table('stripe_events',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('invoice_id', sa.String(length=32), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_stripe_events')),
    sa.UniqueConstraint('id', name=op.f('uq_stripe_events_id'))
    )
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stripe_events_invoice_id'), ['invoice_id'], unique=False)

    op.create_table('payment_links',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('invoice_seq', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['invoice_seq'], ['invoices.seq'], name=op.f('fk_payment_links_invoice_seq_invoices')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_payment_links')),
    sa.UniqueConstraint('id', name=op.f('uq_payment_links_id')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_payment_links_token_hash'))
    )
    with op.batch_alter_table('payment_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_links_invoice_seq'), ['invoice_seq'], unique=False)

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_payment_intent', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('stripe_intent_amount', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('stripe_attempt', sa.Integer(), nullable=False, server_default='0'))

    


def downgrade():
    
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('stripe_attempt')
        batch_op.drop_column('stripe_intent_amount')
        batch_op.drop_column('stripe_payment_intent')

    with op.batch_alter_table('payment_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_links_invoice_seq'))

    op.drop_table('payment_links')
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stripe_events_invoice_id'))

    op.drop_table('stripe_events')
    
