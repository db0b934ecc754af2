"""``python -m vot_lorat`` with the forward pass of every tracker step timed, for ``tracker_speed.py --trax`` and
``vot_speed.py``.

The share outside the model is the TraX time of a frame minus the forward pass of that frame, in the server that
tracked it: a model timed in another process runs with other caches and at other moments. When the server exits,
the forward-pass seconds of every ``LoRATTracker.track`` call (warm-up included, frames in order) are appended as
one JSON list on one line to the file named by ``LORAT_BENCH_FORWARD_TIMES`` (one line per server process: the
toolkit starts one per sequence). It imports whichever ``vot_lorat`` PYTHONPATH gives, so it times other
checkouts of this package layout too.
"""
from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path
from typing import List, Union

import numpy as np
import torch

from vot_lorat.tracking.tracker import LoRATTracker, TrackResult

forward_s: List[float] = []
untimed_track = LoRATTracker.track


def timed_track(self: LoRATTracker, image: Union[np.ndarray, torch.Tensor], profile: bool = False
                ) -> List[TrackResult]:
    results = untimed_track(self, image, profile=True)
    forward_s.append(self.timing["model"])
    return results


def write_times() -> None:
    with open(os.environ["LORAT_BENCH_FORWARD_TIMES"], "a") as f:
        f.write(json.dumps(forward_s) + "\n")


def read_forward_times(path: Path) -> List[List[float]]:
    """The forward-pass seconds of every server that wrote to ``path``, in the order they exited."""
    return [json.loads(line) for line in path.read_text().splitlines()]


if __name__ == "__main__":
    from vot_lorat.toolkit.server import main  # TraX: only where a server runs, not where times are read

    LoRATTracker.track = timed_track
    atexit.register(write_times)
    sys.exit(main())
