"""Credits: what work costs (``pricing``), the double-entry ``ledger`` (both in work units)
and the credit people read (``units``: 1 credit = 10^6 work units).

The API reads the ledger for people in ``daig_api.credit_reports``.
"""
