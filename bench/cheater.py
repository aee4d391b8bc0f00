"""A provider agent that cheats in one of five ways: a real provider process for bench/cheating.

Everything but its training is the real agent's: it claims, renews leases, uploads and
publishes like any volunteer, so what catches it is the server's replication, not the bench.

- ``zero``: skips training and returns a zero delta;
- ``scaled``: trains, then returns its delta x 0.1;
- ``noise``: trains (to learn an honest norm), then returns noise with that norm;
- ``replay``: returns its first task's delta for every later task;
- ``epochs``: trains 1 epoch instead of the task's epochs.

Run as ``python -m bench.cheater --server URL --user U --password-file F --cheat zero``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from daig.logs import setup_logging
from daig.signals import stop_on_signals
from daig.weights.schema import NDArrays, WeightSchema
from daig.weights.stream import load_weights, save_weights
from provider_agent.agent import ProviderAgent
from provider_agent.config import AgentConfig
from provider_agent.trainer import Trainer, TrainJob, TrainOutcome

CHEATS = ("zero", "scaled", "noise", "replay", "epochs")


class CheatingTrainer(Trainer):
    def __init__(self, cheat: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if cheat not in CHEATS:
            raise ValueError(f"unknown cheat {cheat!r}; one of {', '.join(CHEATS)}")
        self.cheat = cheat
        self._first: NDArrays | None = None
        self._rng = np.random.default_rng(0)

    def run(
        self,
        job: TrainJob,
        *,
        wait: Any,
        should_stop: Any,
        on_progress: Any = None,
        suspender: Any = None,
    ) -> TrainOutcome:
        schema = WeightSchema.from_json(job.weight_schema)
        if self.cheat == "zero":
            began = time.perf_counter()
            zeros = [np.zeros(t.shape, dtype=np.dtype(t.dtype)) for t in schema.tensors]
            save_weights(Path(job.delta_path), zeros, codec=job.delta_codec)
            rows = int(np.load(job.x_path, mmap_mode="r").shape[0])
            return TrainOutcome(True, {"loss": [0.1]}, rows, time.perf_counter() - began)
        if self.cheat == "epochs":
            job = replace(job, epochs=1)
        outcome = super().run(
            job, wait=wait, should_stop=should_stop, on_progress=on_progress, suspender=suspender
        )
        if not outcome.ok:
            return outcome
        honest = load_weights(Path(job.delta_path), schema)
        cheated = self._cheat(honest)
        save_weights(Path(job.delta_path), cheated, codec=job.delta_codec)
        return outcome

    def _cheat(self, honest: NDArrays) -> NDArrays:
        if self.cheat == "scaled":
            return [v * np.asarray(0.1, dtype=v.dtype) for v in honest]
        if self.cheat == "noise":
            noise = [self._rng.standard_normal(v.shape) for v in honest]
            norm = np.sqrt(sum(float(np.sum(np.square(v, dtype=np.float64))) for v in honest))
            scale = norm / np.sqrt(sum(float(np.sum(np.square(n))) for n in noise))
            return [(n * scale).astype(v.dtype) for n, v in zip(noise, honest, strict=True)]
        if self.cheat == "replay":
            if self._first is None:
                self._first = honest
            return self._first
        return honest  # epochs: the cheat was the shorter training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True, type=Path)
    parser.add_argument("--cheat", required=True, choices=CHEATS)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    setup_logging(process=f"cheater-{args.cheat}")
    config = AgentConfig(
        server=args.server,
        username=args.user,
        password=args.password_file.read_text().strip(),
        threads=args.threads,
    )
    agent = ProviderAgent(config, stop_on_signals())
    agent._trainer = CheatingTrainer(args.cheat, threads=args.threads)
    agent.run()


if __name__ == "__main__":
    main()
