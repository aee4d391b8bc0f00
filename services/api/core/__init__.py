"""API configuration and security helpers."""
