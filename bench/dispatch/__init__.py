"""The dispatch-at-scale benchmark (``python -m bench.dispatch_scale``), in parts.

- ``config``: the command line and what it means for the projects (``Config``).
- ``setup``: the model and data files, the projects, the simulated volunteers' accounts.
- ``http``: a lean HTTP/1.1 keep-alive client for claims and result uploads.
- ``amqp``: pika's native asyncio connection, shared by a few simulated providers each.
- ``provider``: one simulated provider, the real agent's task loop minus the training.
- ``recorder``: what the generator saw, per measured window (claims, latencies, busy time).
- ``fleet``: the providers, their connections, the ramp of steps and the loop-lag watch.
- ``sampler``: a child process sampling CPU by role, queue depths and lock waits.
- ``queues``: every queue's depth from RabbitMQ's management API, grouped by route.
- ``figures``: one step's figures from the recorder, the samples and the database.
- ``report``: bottlenecks, the knee, the printed table and the JSON line.
- ``calibrate``: the generator alone against stand-ins, for its CPU per task on a machine.
"""
