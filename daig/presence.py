"""Which volunteers are online now: the one definition the API, the agent and the docs share.

A provider agent is **online** when, within the last ``ONLINE_SECONDS``, it said it was waiting
for tasks (``POST /v1/provider/presence``, sent every ``PRESENCE_SECONDS`` while it is idle and
its volunteer's conditions allow work) or it held a claim whose lease ran that recently (a
training agent renews its lease every few seconds). A **volunteer online** is an account with
at least one agent online, not quarantined. An agent paused by its volunteer's conditions
(hours, idle time, battery) stops saying so and drops out after ``ONLINE_SECONDS``.
"""

from __future__ import annotations

PRESENCE_SECONDS = 30.0  # how often an idle agent says it is waiting
ONLINE_SECONDS = 120.0  # four missed presence calls and the agent is no longer online
