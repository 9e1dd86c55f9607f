"""messages: a per-invoice switch for payment reminders; outbox rows may be skipped

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 10:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminders_off', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('pending', 'sent', 'failed', 'skipped')")


def downgrade():
    op.execute("UPDATE outbox SET status = 'sent' WHERE status = 'skipped'")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_status'), type_='check')
        batch_op.create_check_constraint('status', "status IN ('pending', 'sent', 'failed')")
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('reminders_off')
