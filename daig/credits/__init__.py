"""Credits: what work costs (``pricing``) and the double-entry ``ledger``.

The API reads the ledger for people in ``daig_api.credit_reports``.
"""
