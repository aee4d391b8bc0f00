"""Flower's side of ``bench/versus_flower.py``: a ServerApp and ClientApp for the Deployment
Runtime (``server_app``, ``client_app``), long-lived ``start_server``/``start_client``
processes (``legacy``), and the training both share (``task``)."""
