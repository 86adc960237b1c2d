"""The process that owns a queued or running sandbox run (host:pid)."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("sandbox_runs", sa.Column("owner", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("sandbox_runs", "owner")
