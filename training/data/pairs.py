"""The training sample stream: sample index -> (template, search, labels), deterministic per index."""
from __future__ import annotations

import logging
from typing import Iterator, List, Sequence as Seq

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from vot_lorat.tracking import box as bx

from ..interrupt import ignore_in_worker
from .sampler import EpochPicker, sample_frames
from .sequence import SequenceDataset
from .transform import PairTransform

log = logging.getLogger(__name__)


class PairDataset(Dataset):
    """``dataset[i]`` is global sample ``i``: epoch ``i // samples_per_epoch``, drawn from generators seeded
    by ``(seed, i)``. A pair that cannot be used (no visible target, jitter failed 12 times, unreadable
    frame) is replaced by a new random pick, as the reference does."""

    def __init__(self, datasets: List[SequenceDataset], weights: Seq[float], transform: PairTransform,
                 samples_per_epoch: int, seed: int, max_gap: int = 100) -> None:
        self.datasets = datasets
        self.picker = EpochPicker(datasets, weights, samples_per_epoch, seed)
        self.transform = transform
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.max_gap = max_gap

    def __len__(self) -> int:
        return self.samples_per_epoch

    def __getitem__(self, index: int):
        epoch, i = divmod(int(index), self.samples_per_epoch)
        rng = np.random.default_rng([self.seed, int(index)])
        d, s = (int(v) for v in self.picker.picks(epoch)[i])
        for _ in range(100):
            sample = self._pair(rng, d, s)
            if sample is not None:
                return sample
            d, s = self.picker.random_pick(rng)
        raise RuntimeError("100 draws in a row gave no usable training pair; check the datasets with "
                           "`python -m training check-data`")

    def _pair(self, rng: np.random.Generator, d: int, s: int):
        dataset = self.datasets[d]
        try:
            sequence = dataset[s]
            frames = sample_frames(rng, sequence, dataset.video, self.max_gap)
            if frames is None:
                return None
            z, x = frames
            z_image = sequence.frame(z)
            x_image = z_image if x == z else sequence.frame(x)
        except OSError as exc:
            log.warning("skipping a sample of %s: %s", dataset.name, exc)
            return None
        z_box = bx.clip(sequence.boxes[z], z_image.shape[1], z_image.shape[0])
        x_box = bx.clip(sequence.boxes[x], x_image.shape[1], x_image.shape[0])
        if not (bx.is_valid(z_box) and bx.is_valid(x_box)):
            return None
        return self.transform(rng, z_image, z_box, x_image, x_box)


class StepBatchSampler(Sampler[List[int]]):
    """Micro-batches of global sample indices from micro-step ``start``: rank ``r`` of ``world`` takes
    ``[m*B*world + r*B, m*B*world + (r+1)*B)`` for micro-step ``m``, so resuming at a step needs no state."""

    def __init__(self, start: int, stop: int, local_batch: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.stop = start, stop
        self.local_batch, self.rank, self.world = local_batch, rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[List[int]]:
        for m in range(self.start, self.stop):
            first = m * self.local_batch * self.world + self.rank * self.local_batch
            yield list(range(first, first + self.local_batch))


def worker_init(_: int) -> None:
    """Data workers use one thread each: the main process owns the cores. They leave Ctrl-C and SIGTERM to the
    main process, which stops the run at a step boundary and shuts them down itself."""
    torch.set_num_threads(1)
    ignore_in_worker()
