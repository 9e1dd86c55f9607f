"""staff web

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 11:51:34.351102

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    
    op.create_table('login_failures',
    sa.Column('seq', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_key_at', ['key', 'at'], unique=False)

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('issued_on', sa.Date(), nullable=True))
        batch_op.create_index('ix_invoices_issued_on', ['issued_on'], unique=False,
                              postgresql_include=['status', 'product_amount', 'service_amount'])
        batch_op.create_index('ix_invoices_status_due', ['status', 'due_date'], unique=False,
                              postgresql_include=['total', 'amount_paid', 'issued_on'])

    # Invoices issued before this column existed: their UTC date (close enough for reports).
    if op.get_bind().dialect.name == 'sqlite':
        op.execute("UPDATE invoices SET issued_on = date(issued_at) WHERE issued_at IS NOT NULL")
    else:
        op.execute("UPDATE invoices SET issued_on = (issued_at AT TIME ZONE 'Europe/London')::date "
                   "WHERE issued_at IS NOT NULL")

    


def downgrade():
    
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_status_due')
        batch_op.drop_index('ix_invoices_issued_on')
        batch_op.drop_column('issued_on')

    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_key_at')

    op.drop_table('login_failures')
    
