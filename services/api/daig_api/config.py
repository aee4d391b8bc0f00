"""The API's settings are DAIG's shared settings (``DAIG_*`` variables)."""

from daig.settings import Settings

__all__ = ["Settings"]
