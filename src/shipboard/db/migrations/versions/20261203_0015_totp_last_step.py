"""Remember the last accepted TOTP time step per user, so a code is accepted only once.

RFC 6238 §5.2: a verifier must not accept the second attempt of the same one-time password.
Without the step, a code seen over a shoulder or in a proxy log signed in again within its
~90-second window.

Revision ID: 20261203_0015
Revises: 20261203_0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261203_0015"
down_revision = "20261203_0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("totp_last_step", sa.BigInteger()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("totp_last_step")
