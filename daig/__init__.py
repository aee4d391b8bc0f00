"""DAIG's shared package: everything that crosses a process boundary.

Message schemas, broker topology and plumbing, settings, the blob store, the weight codec,
file validation, the database schema, the HTTP client and the ``daig`` command.
"""

__version__ = "0.1.0"
