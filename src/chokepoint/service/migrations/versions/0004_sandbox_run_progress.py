"""How far a running sandbox run has got (scenario runs done / total)."""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.add_column("sandbox_runs", sa.Column("done", sa.Integer, nullable=True))
    op.add_column("sandbox_runs", sa.Column("total", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("sandbox_runs", "total")
    op.drop_column("sandbox_runs", "done")
