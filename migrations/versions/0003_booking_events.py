"""booking events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 11:28:33.301812

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    
    op.create_table('booking_events',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('booking_id', sa.String(length=64), nullable=True),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('flag', sa.Text(), nullable=True),
    sa.Column('invoice_id', sa.String(length=32), nullable=True),
    sa.Column('deliveries', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_booking_events')),
    sa.UniqueConstraint('id', name=op.f('uq_booking_events_id'))
    )
    with op.batch_alter_table('booking_events', schema=None) as batch_op:
        batch_op.create_index('ix_booking_events_booking_seq', ['booking_id', 'seq'], unique=False)
        batch_op.create_index('ix_booking_events_outcome_seq', ['outcome', 'seq'], unique=False)

    op.create_table('bookings',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('last_event_created', sa.BigInteger(), nullable=False),
    sa.Column('last_event_id', sa.String(length=100), nullable=True),
    sa.Column('invoice_id', sa.String(length=32), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bookings'))
    )
    


def downgrade():
    
    op.drop_table('bookings')
    with op.batch_alter_table('booking_events', schema=None) as batch_op:
        batch_op.drop_index('ix_booking_events_outcome_seq')
        batch_op.drop_index('ix_booking_events_booking_seq')

    op.drop_table('booking_events')
    
