"""The requestor and provider desktop client (PyQt5), built on the HTTP API.

Not built yet: the end-to-end flow comes first; the GUI is issue 5.
"""
