"""Dataset kinds by name: ``--data KIND:PATH`` picks a reader here."""
from __future__ import annotations

from typing import Callable, Dict

from ..config import DataSource
from .sequence import SequenceDataset
from .synthetic import HELD_OUT_SEED_OFFSET, SyntheticDataset, SyntheticSpec


def _synthetic(source: DataSource) -> SequenceDataset:
    opts = dict(source.options)
    held_out = opts.pop("split", "train") in ("held_out", "test", "eval")
    spec = SyntheticSpec(
        num_sequences=int(opts.pop("sequences", 24 if held_out else 100_000)),
        num_frames=int(opts.pop("frames", 150 if held_out else 120)),
        seed_offset=int(opts.pop("offset", 0)) + (HELD_OUT_SEED_OFFSET if held_out else 0),
    )
    if opts:
        raise ValueError(f"unknown synthetic dataset options: {', '.join(opts)} (known: split, sequences, frames, "
                         f"offset)")
    dataset = SyntheticDataset(spec)
    dataset.name = "synthetic-held-out" if held_out else "synthetic"
    return dataset


READERS: Dict[str, Callable[[DataSource], SequenceDataset]] = {
    "synthetic": _synthetic,
}


def build_dataset(source: DataSource) -> SequenceDataset:
    try:
        reader = READERS[source.kind]
    except KeyError:
        raise ValueError(f"unknown dataset kind {source.kind!r}; choose one of: {', '.join(READERS)}") from None
    return reader(source)
