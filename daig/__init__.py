"""DAIG's shared package: everything that crosses a process boundary.

The wire contract (broker messages and HTTP bodies, ``daig.contract``), broker topology and
plumbing, settings, the blob store, the weight codec, file validation, the database schema
and the HTTP client.
"""

__version__ = "0.1.0"
