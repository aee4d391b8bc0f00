"""What training costs, in work units: pure functions, no I/O.

As in the original DAIG, a task's worth is the work it asks for: the shard's samples x the
epochs x the model's parameters (every weight the model file holds, trainable or not). The
ledger counts these work units, exact integers, so a provider's earnings and the requestor's
spend agree to the unit; people read credits of 10^6 units (``daig.credits.units``). A
project's estimate is the sum over every task its plan will run (``passes`` sweeps of
``total_tasks`` shards, K per round, wrapping around).
"""

from __future__ import annotations

from daig.planning import Plan


def task_cost(*, samples: int, epochs: int, parameters: int) -> int:
    """Work units one accepted result earns its provider and costs the project's owner."""
    if samples < 0 or epochs < 0 or parameters < 0:
        raise ValueError("samples, epochs and parameters cannot be negative")
    return samples * epochs * parameters


def project_estimate(
    *,
    total_rows: int,
    total_tasks: int,
    task_size: int,
    passes: int,
    epochs: int,
    parameters: int,
) -> int:
    """Work units the whole project will cost if every planned task is accepted once."""
    plan = Plan(total_rows, total_tasks, task_size, passes)
    samples = 0
    for round_index in range(plan.rounds):
        for shard in plan.shards(round_index):
            start, stop = plan.rows(shard)
            samples += stop - start
    return task_cost(samples=samples, epochs=epochs, parameters=parameters)
