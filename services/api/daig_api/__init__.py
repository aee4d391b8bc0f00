"""The DAIG HTTP API (FastAPI): users, projects, uploads, status, downloads and task claims."""
