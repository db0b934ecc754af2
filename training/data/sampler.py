"""Which sequence and which two frames each training sample uses, as the official LoRAT code samples them.

Everything is drawn from generators seeded by (seed, epoch) and (seed, sample index), so a sample is
the same whatever the worker, the number of ranks, or whether the run was interrupted and resumed.
"""
from __future__ import annotations

from typing import List, Optional, Sequence as Seq, Tuple

import numpy as np

from .sequence import Sequence, SequenceDataset


def normalise_weights(weights: Seq[float]) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if len(w) == 0 or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"dataset weights must be non-negative and not all zero, got {list(weights)}")
    return w / w.sum()


class EpochPicker:
    """Per epoch, ``weight x samples_per_epoch`` picks per dataset, filled with back-to-back shuffled
    permutations of that dataset's sequences, then all picks shuffled together (the reference's
    RandomSequencePicker)."""

    def __init__(self, datasets: List[SequenceDataset], weights: Seq[float], samples_per_epoch: int,
                 seed: int) -> None:
        self.datasets = datasets
        self.weights = normalise_weights(weights)
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self._cache: Tuple[int, np.ndarray] = (-1, np.empty((0, 2), np.int64))

    def _counts(self) -> np.ndarray:
        raw = self.weights * self.samples_per_epoch
        counts = np.floor(raw).astype(np.int64)
        for i in np.argsort(-(raw - counts))[: self.samples_per_epoch - counts.sum()]:
            counts[i] += 1
        return counts

    def picks(self, epoch: int) -> np.ndarray:
        """(samples_per_epoch, 2) array of (dataset index, sequence index)."""
        if self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch, 0x5EED])
        parts = []
        for d, (dataset, count) in enumerate(zip(self.datasets, self._counts())):
            if count == 0:
                continue
            n = len(dataset)
            if n == 0:
                raise ValueError(f"dataset {dataset.name} has no sequences")
            reps = -(-count // n)
            seqs = np.concatenate([rng.permutation(n) for _ in range(reps)])[:count]
            parts.append(np.stack([np.full(count, d), seqs], axis=1))
        picks = np.concatenate(parts)
        picks = picks[rng.permutation(len(picks))]
        self._cache = (epoch, picks)
        return picks

    def random_pick(self, rng: np.random.Generator) -> Tuple[int, int]:
        """A replacement pick after a failed sample: a dataset by weight, then a sequence uniformly."""
        d = int(rng.choice(len(self.datasets), p=self.weights))
        return d, int(rng.integers(len(self.datasets[d])))


def sample_frames(rng: np.random.Generator, sequence: Sequence, video: bool,
                  max_gap: int = 100) -> Optional[Tuple[int, int]]:
    """Template and search frame indices: the template among visible frames, the search frame among
    visible frames within ``max_gap`` of it (not the template itself; the template if there is none).
    Single-image datasets use the same image twice. None when the target is never visible."""
    visible = np.flatnonzero(sequence.visible)
    if len(visible) == 0:
        return None
    z = int(visible[rng.integers(len(visible))])
    if not video:
        return z, z
    near = visible[(np.abs(visible - z) <= max_gap) & (visible != z)]
    if len(near) == 0:
        return z, z
    return z, int(near[rng.integers(len(near))])
