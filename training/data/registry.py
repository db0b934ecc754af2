"""Dataset kinds by name: ``--data KIND:PATH`` picks a reader here."""
from __future__ import annotations

import inspect
from typing import Callable, Dict

from ..config import DataSource
from .coco import COCO
from .custom import CustomDataset
from .got10k import GOT10k
from .lasot import LaSOT
from .sequence import SequenceDataset
from .synthetic import HELD_OUT_SEED_OFFSET, SyntheticDataset, SyntheticSpec
from .trackingnet import TrackingNet
from .vot import VOTSequences


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


def _files(cls) -> Callable[[DataSource], SequenceDataset]:
    """A reader of a dataset tree: the path is required and the options are the constructor's keywords
    (``split`` and the reader's own), so a misspelt option fails before any file is read."""
    known = [name for name in inspect.signature(cls).parameters if name != "root"]

    def read(source: DataSource) -> SequenceDataset:
        if not source.path:
            raise ValueError(f"dataset kind {source.kind!r} needs the dataset folder: "
                             f"--data {source.kind}:/path/to/dataset")
        unknown = sorted(set(source.options) - set(known))
        if unknown:
            raise ValueError(f"unknown {source.kind} dataset option(s): {', '.join(unknown)} "
                             f"(known: {', '.join(known)})")
        return cls(source.path, **source.options)

    return read


READERS: Dict[str, Callable[[DataSource], SequenceDataset]] = {
    "synthetic": _synthetic,
    "lasot": _files(LaSOT),
    "got10k": _files(GOT10k),
    "trackingnet": _files(TrackingNet),
    "coco": _files(COCO),
    "custom": _files(CustomDataset),
    "vot": _files(VOTSequences),
}


def build_dataset(source: DataSource) -> SequenceDataset:
    try:
        reader = READERS[source.kind]
    except KeyError:
        raise ValueError(f"unknown dataset kind {source.kind!r}; choose one of: {', '.join(READERS)}") from None
    return reader(source)
