"""staff daily work: a failed booking event can be dismissed, with who, when and a note

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27 11:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

OUTCOMES = "'created', 'updated', 'finalized', 'voided', 'duplicate', 'stale', 'ignored', 'failed'"


def upgrade():
    with op.batch_alter_table('booking_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dismissed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
        batch_op.drop_constraint(op.f('ck_booking_events_outcome'), type_='check')
        batch_op.create_check_constraint('outcome', f"outcome IN ({OUTCOMES}, 'dismissed')")


def downgrade():
    # A dismissed event was a failed one; it goes back on the failed list.
    op.execute("UPDATE booking_events SET outcome = 'failed' WHERE outcome = 'dismissed'")
    with op.batch_alter_table('booking_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_booking_events_outcome'), type_='check')
        batch_op.create_check_constraint('outcome', f"outcome IN ({OUTCOMES})")
        batch_op.drop_column('note')
        batch_op.drop_column('dismissed_at')
        batch_op.drop_column('dismissed_by')
