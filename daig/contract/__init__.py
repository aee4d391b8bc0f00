"""The wire contract: every shape that crosses a process boundary, imported by both ends.

``messages``: what travels over the broker (tasks, results, project events).
``http``: the HTTP API's request and response bodies; the API serves them, ``daig.client``
returns them. Nothing here imports a web framework or the database.
"""
