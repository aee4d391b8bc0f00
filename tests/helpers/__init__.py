"""Code that tests share, imported by test modules (never a test module or a conftest).

- ``waiting``: ``wait_until``, the deadline-bounded poll.
- ``services``: where Postgres and RabbitMQ are, ``ApiServer``, ``module_api_server``.
- ``accounts``: the test users' password, ``new_user``.
- ``projects``: small training data, ``create_started_project``, ``Started``, ``wait_for_end``,
  ``RoundsByHand`` (a project's rounds handed in by hand, to its end).
- ``queues``: reading and draining the broker's queues, the aggregator consuming them.
- ``results``: result messages as a provider sends them, ``Provider`` driven by hand.
- ``aggregation``: ``DirectAggregator``, the aggregator handed results without a broker.
- ``stragglers``: ``make_straggler``, a claim made late and its task given out again.
- ``cli``: ``run_daig``, the command run as its own process.
- ``by_hand``: ``train_by_hand``, a volunteer's results judged by a real aggregator (GUI tests).
- ``proxy``: ``Proxy``, a TCP relay the tests cut and restore (the server unreachable).
- ``training``: ``train_job``, a small job for the provider's trainer.
- ``agents``: ``volunteer_agent`` (``agent_of`` an account) and ``running``, an in-process
  provider agent and its thread.
- ``scheduling``: ``scheduling`` (the scheduler consuming and ticking in a thread) and
  ``watching`` (its black-hole watch).
- ``cluster``: ``Cluster``, a cluster of real processes for end-to-end and GUI tests.
- ``gui``: the GUI tests' password, timeout, unique names and ``log_in``.
- ``sandbox_targets``: child-process targets for ``daig.sandbox``.
- ``fixtures``: the pytest plugin of fixtures several test directories share (``cluster``).

The broker connection a provider makes with its own credentials (``ProviderBroker``) is in
``bench.provider_broker``, because benchmarks use it too and never import from ``tests``.
"""
