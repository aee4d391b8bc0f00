"""The Postgres schema every server process shares, its sessions and its migrations."""
