"""An endless, resumable stream of per-rank batches of indices, built on `DistributedSampler`.

Iteration-based training needs batch i of rank r to be a pure function of (seed, i, r): then a resumed run
sees exactly the batches an uninterrupted one would have, without loading the skipped images. Epoch e is
DistributedSampler's shuffle with `set_epoch(e)`; this rank's epochs are concatenated and cut into batches.
Augmentation coin flips travel with the indices, drawn from a generator seeded by (seed, epoch, rank), so
they too do not depend on data-loader worker processes or on where a run was resumed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Dataset, DistributedSampler, Sampler


class ResumableBatchSampler(Sampler[list[tuple[int, bool]]]):
    """Yields lists of `batch_size` (dataset index, flip) pairs forever, starting at batch `start_iter`."""

    def __init__(
        self, dataset: Dataset, batch_size: int, rank: int, world_size: int, seed: int, start_iter: int = 0
    ) -> None:
        self.sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False
        )
        self.batch_size = batch_size
        self.start_iter = start_iter
        self.seed, self.rank = seed, rank

    def _epoch(self, epoch: int) -> list[tuple[int, bool]]:
        self.sampler.set_epoch(epoch)
        indices = list(self.sampler)
        flips = np.random.default_rng([self.seed, epoch, self.rank]).random(len(indices)) < 0.5
        return list(zip(indices, flips.tolist(), strict=True))

    def __iter__(self) -> Iterator[list[tuple[int, bool]]]:
        per_epoch = len(self.sampler)
        position = self.start_iter * self.batch_size
        epoch, offset = divmod(position, per_epoch)
        pending = self._epoch(epoch)[offset:]
        while True:
            while len(pending) < self.batch_size:
                epoch += 1
                pending += self._epoch(epoch)
            yield pending[: self.batch_size]
            pending = pending[self.batch_size :]
