"""provider results: an index for a volunteer's own recent results

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 00:45:00

- ``ix_results_provider_received`` on ``results (provider_id, received_at)``: the GUI polls
  ``GET /v1/provider/results`` every few seconds per volunteer; without it each poll scans
  every result of the installation.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_results_provider_received", "results", ["provider_id", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_results_provider_received", table_name="results")
