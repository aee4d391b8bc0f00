"""Credits: what work costs (``pricing``), the double-entry ``ledger``, and ``reports``."""
