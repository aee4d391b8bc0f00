"""The DAIG desktop client (PyQt5): requestor and provider modes, built on the HTTP API.

Views (``views/``) only touch widgets; every network call and file check runs in a
``workers.Worker`` on a thread pool, and the provider agent on its own ``QThread``
(``agent_thread``), with training in the agent's child process. Table data lives in
``QAbstractTableModel``s (``models``); blocking flows in ``operations``, ``checks`` and
``account``; remembered settings (never the password) in ``settings``.
"""
