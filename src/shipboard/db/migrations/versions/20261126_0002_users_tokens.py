"""Users and API tokens.

Revision ID: 20261126_0002
Revises: 20261126_0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID, SQLITE_NOW, SQLITE_UUID, UTCDateTime

revision = "20261126_0002"
down_revision = "20261126_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    now = sa.text("now()") if pg else sa.text(SQLITE_NOW)
    new_uuid = sa.text("gen_random_uuid()") if pg else sa.text(SQLITE_UUID)
    false = sa.text("false") if pg else sa.text("0")
    op.create_table(
        "users",
        sa.Column("id", GUID(), server_default=new_uuid, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default=false, nullable=False),
        sa.Column("password_hash", sa.Text()),
        sa.Column("created_at", UTCDateTime(), server_default=now, nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=now, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("users_pkey")),
        sa.UniqueConstraint("name", name=op.f("users_name_key")),
        sa.CheckConstraint(
            "role IN ('viewer', 'deployer', 'service', 'admin')", name=op.f("users_role_check")
        ),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", GUID(), server_default=new_uuid, nullable=False),
        sa.Column("user_id", GUID(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("description", sa.Text()),
        sa.Column("created_at", UTCDateTime(), server_default=now, nullable=False),
        sa.Column("expires_at", UTCDateTime()),
        sa.Column("revoked_at", UTCDateTime()),
        sa.Column("last_used_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name=op.f("api_tokens_pkey")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name=op.f("api_tokens_user_id_fkey")
        ),
        sa.UniqueConstraint("token_hash", name=op.f("api_tokens_token_hash_key")),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    if pg:
        for table in ("users", "api_tokens"):
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO shipboard_app")


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("users")
