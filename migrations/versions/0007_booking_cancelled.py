"""one booking, one bill: a booking remembers it was cancelled, so a newer event is a rebooking

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 08:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cancelled', sa.Boolean(), server_default=sa.false(), nullable=False))
    # An invoice made through the API with a booking id is that booking's invoice: record it on
    # the booking's row (made here if no event came yet), as the API now does when it makes one.
    op.execute("""
        INSERT INTO bookings (id, last_event_created, invoice_id, updated_at, cancelled)
        SELECT i.booking_id, 0, i.id, CURRENT_TIMESTAMP, false
        FROM invoices i
        WHERE i.booking_id IS NOT NULL AND i.charge = 'full' AND i.status <> 'void'
          AND NOT EXISTS (SELECT 1 FROM bookings b WHERE b.id = i.booking_id)
          AND i.seq = (SELECT max(i2.seq) FROM invoices i2 WHERE i2.booking_id = i.booking_id
                       AND i2.charge = 'full' AND i2.status <> 'void')
    """)


def downgrade():
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.drop_column('cancelled')
