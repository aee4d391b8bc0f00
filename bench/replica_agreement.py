"""How far two honest runs of one task differ, and how far each cheat lands: the replica tolerance.

Real training children (``provider_agent.trainer.Trainer``, the agent's own), three of them:
two with one thread each and one with two, on the digits MLP and on the same MLP with a
Dropout layer (so dropout's seeding is measured too). Each trains the same tasks, seeded by
``task_seed`` as providers do; the deltas are compared as replication compares them
(``daig.agreement``), raw and after each delta codec. The five cheats of issue 14 are then
measured against an honest delta: zero, x0.1, noise with the honest norm, a replayed delta
(the same shard's update from the previous round), and 1 epoch instead of 5.

    .venv/bin/python bench/replica_agreement.py [--tasks 12]

Prints one line per comparison: the largest and median per-layer distance
(``layer_distance``), the relative L2 of the whole update and ``1 - cos``.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daig.agreement import DEFAULT_TOLERANCE, cosine_distance, layer_distance, relative_l2  # noqa: E402
from daig.examples import digits_split  # noqa: E402
from daig.planning import shard_rows, task_seed  # noqa: E402
from daig.weights.h5weights import read_weights  # noqa: E402
from daig.weights.schema import NDArrays, WeightSchema  # noqa: E402
from daig.weights.stream import load_weights, save_weights  # noqa: E402
from provider_agent.trainer import Trainer, TrainJob  # noqa: E402

SHARDS, EPOCHS, BATCH = 10, 5, 32


def build_model(path: Path, dropout: bool) -> None:
    import keras

    layers = [keras.Input(shape=(64,)), keras.layers.Dense(64, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(0.2))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.save(path)


class Task:
    """One (round, shard) of a bench project: its start weights and rows on disk."""

    def __init__(self, base: TrainJob, directory: Path, project: uuid.UUID, rnd: int, shard: int):
        self.round, self.shard = rnd, shard
        self.job = replace(
            base,
            x_path=str(directory / f"x{shard}.npy"),
            y_path=str(directory / f"y{shard}.npy"),
            seed=task_seed(project, rnd, shard),
        )


def train(trainer: Trainer, job: TrainJob, schema: WeightSchema, **changes: object) -> NDArrays:
    job = replace(job, **changes)  # type: ignore[arg-type]
    outcome = trainer.run(job, wait=lambda s: None, should_stop=lambda: False)
    if not outcome.ok:
        raise RuntimeError(outcome.error)
    return load_weights(Path(job.delta_path), schema)


def through_codec(delta: NDArrays, codec: str, directory: Path, schema: WeightSchema) -> NDArrays:
    path = directory / f"codec-{codec}.dwt"
    save_weights(path, delta, codec=codec)
    return load_weights(path, schema)


def line(label: str, pairs: list[tuple[NDArrays, NDArrays]]) -> str:
    layer = [layer_distance(a, b) for a, b in pairs]
    whole = [
        relative_l2(np.concatenate([x.ravel() for x in a]), np.concatenate([y.ravel() for y in b]))
        for a, b in pairs
    ]
    cos = [cosine_distance(a, b) for a, b in pairs]
    caught = sum(d > DEFAULT_TOLERANCE for d in layer)
    return (
        f"  {label:44s} n={len(pairs):3d}  layer max {max(layer):.2e} median "
        f"{statistics.median(layer):.2e}  whole max {max(whole):.2e}  1-cos max {max(cos):.2e}"
        f"  over {DEFAULT_TOLERANCE:g}: {caught}/{len(pairs)}"
    )


def measure(dropout: bool, tasks: int, directory: Path) -> None:
    directory.mkdir(parents=True)
    model = directory / "model.h5"
    build_model(model, dropout)
    weights = read_weights(model)
    schema = WeightSchema.of(weights)
    x, y, _, _ = digits_split()
    for shard in range(SHARDS):
        start, stop = shard_rows(shard, len(x), SHARDS)
        np.save(directory / f"x{shard}.npy", x[start:stop])
        np.save(directory / f"y{shard}.npy", y[start:stop])
    save_weights(directory / "w0.dwt", weights)
    base = TrainJob(
        model_path=str(model),
        model_sha256=hashlib.sha256(model.read_bytes()).hexdigest(),
        weights_path=str(directory / "w0.dwt"),
        weight_schema=schema.to_json(),
        x_path="",
        y_path="",
        epochs=EPOCHS,
        batch_size=BATCH,
        validation_split=0.0,
        delta_path=str(directory / "delta.dwt"),
    )
    project = uuid.uuid4()
    one_a, one_b, two = Trainer(threads=1), Trainer(threads=1), Trainer(threads=2)
    pairs: dict[str, list[tuple[NDArrays, NDArrays]]] = {}

    def add(label: str, a: NDArrays, b: NDArrays) -> None:
        pairs.setdefault(label, []).append((a, b))

    try:
        # Round r's start weights: round r-1's start plus the mean of its honest deltas.
        previous: dict[int, NDArrays] = {}
        start_weights = weights
        done = 0
        for rnd in range(tasks):
            weights_path = directory / f"w{rnd}.dwt"
            save_weights(weights_path, start_weights)
            round_deltas: list[NDArrays] = []
            for shard in range(min(3, SHARDS)):
                if done >= tasks:
                    break
                done += 1
                job = Task(
                    replace(base, weights_path=str(weights_path)), directory, project, rnd, shard
                ).job
                a = train(one_a, job, schema)
                c = train(two, job, schema)
                add("same process, same task twice", a, train(one_a, job, schema))
                add("1 thread vs 1 thread (two processes)", a, train(one_b, job, schema))
                add("1 thread vs 2 threads", a, c)
                for codec in ("fp16", "int8"):
                    coded = through_codec(c, codec, directory, schema)
                    add(
                        f"1 vs 2 threads, both {codec}",
                        through_codec(a, codec, directory, schema),
                        coded,
                    )
                    add(f"fp32 vs {codec} (1 vs 2 threads)", a, coded)
                cheats: dict[str, NDArrays] = {
                    "cheat: zero delta": [np.zeros_like(v) for v in a],
                    "cheat: honest x0.1": [v * 0.1 for v in a],
                    "cheat: noise with the honest norm": _noise_like(a, rnd * 100 + shard),
                    "cheat: 1 epoch instead of 5": train(two, job, schema, epochs=1),
                }
                if shard in previous:
                    cheats["cheat: replay of last round's delta"] = previous[shard]
                for label, cheat in cheats.items():
                    add(label, cheat, c)
                previous[shard] = a
                round_deltas.append(a)
            if not round_deltas:
                break
            start_weights = [
                w + sum(d[i] for d in round_deltas) / len(round_deltas)
                for i, w in enumerate(start_weights)
            ]
    finally:
        for trainer in (one_a, one_b, two):
            trainer.close()
    print(f"digits MLP{' with Dropout(0.2)' if dropout else ''}: {EPOCHS} epochs, batch {BATCH}")
    for label, found in pairs.items():
        print(line(label, found))


def _noise_like(delta: NDArrays, seed: int) -> NDArrays:
    rng = np.random.default_rng(seed)
    noise = [rng.standard_normal(v.shape).astype(v.dtype) for v in delta]
    scale = np.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in delta)) / np.sqrt(
        sum(float(np.sum(n.astype(np.float64) ** 2)) for n in noise)
    )
    return [n * scale for n in noise]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=12, help="tasks per model (3 per round)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for dropout in (False, True):
            measure(dropout, args.tasks, Path(tmp) / ("dropout" if dropout else "plain"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
