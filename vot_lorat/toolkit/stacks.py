"""The VOT toolkit's stacks as a box or mask tracker meets them: which toolkit release runs a stack, what its
ground truth is, and what a workspace's local sequences need (anchors, tags).

vot-toolkit 0.9.0 (the project's) runs ``unsupervised`` experiments; its ``multistart`` and ``supervised``
experiments and its ``realtime`` modifier crash whatever the tracker (0.8.1 too), while 0.7.4 runs them with the
same stack files. The ``redetection`` experiments of the long-term stacks run in neither (their transformer is
never given the cache it needs), so a workspace gets a copy of such a stack without them. Nothing here imports
the toolkit: the catalogue is read as files.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

import yaml

PROJECT_TOOLKIT = "0.9.0"  # setup.cfg's pin
OLDER_TOOLKIT = "0.7.4"  # the last release whose multistart, supervised and realtime experiments run
# experiment features that crash in PROJECT_TOOLKIT and run in OLDER_TOOLKIT
OLDER_TOOLKIT_TYPES = ("multistart", "supervised")
# single-object stacks whose ground truth is masks (the segmentation challenges); the multi-object stacks (VOTS,
# tests/multiobject, davis2017val) have masks too, the others boxes or polygons
MASK_STACKS = ("vot2020/shortterm", "vot2021/shortterm", "vot2022/shortterm", "tests/segmentation")
# experiment types and analyses that need another kind of tracker: a point tracker or a text-prompted one
OTHER_TRACKERS = {"referral": "a tracker started from a text description",
                  "vot.analysis.point.AveragePointAccuracy": "a point tracker"}


@dataclass(frozen=True)
class StackPlan:
    """What it takes to run one stack with our tracker.

    Args:
        name: the catalogue name (``vot2022/shorttermbox``) or the stack file given.
        toolkit: the vot-toolkit release that runs every kept experiment.
        masks: the ground truth is masks: answer masks (``LoRAT-mask``, ``LoRAT-SAM``), else rectangles.
        multiobject: the experiments give several objects at once (VOTS).
        anchors: a multistart experiment needs ``anchor.value`` files in the sequences.
        tags: the per-frame tags that analyses filter on (``evaluation`` in the VOTS validation stacks).
        dropped: experiments left out of the workspace's copy of the stack, because no toolkit runs them.
        definition: the stack as the workspace gets it.
    """

    name: str
    toolkit: str
    masks: bool
    multiobject: bool
    anchors: bool
    tags: Tuple[str, ...]
    dropped: Tuple[str, ...]
    definition: Dict

    @property
    def local_copy(self) -> bool:
        """The workspace needs its own copy of the stack file (experiments dropped, or not in the catalogue)."""
        return bool(self.dropped) or os.path.isfile(self.name)

    def stack_file_text(self) -> str:
        """The workspace's copy of the stack, with a header that says what differs from the catalogue's."""
        header = f"# {self.name} for vot_lorat"
        if self.dropped:
            header += (f", without {', '.join(self.dropped)}: the toolkit's redetection transformer is never given "
                       f"the cache it needs, in every release")
        return header + "\n" + yaml.safe_dump(self.definition, sort_keys=False)


def catalogue_dir() -> str:
    """The folder of the project's toolkit's stack files (found without importing the toolkit)."""
    spec = importlib.util.find_spec("vot")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("vot-toolkit is not installed in this Python: run ./install.sh")
    return os.path.join(list(spec.submodule_search_locations)[0], "stack")


def catalogue() -> List[str]:
    """Every stack name of the project's toolkit."""
    root = catalogue_dir()
    names = []
    for folder, _, files in os.walk(root):
        names += [os.path.relpath(os.path.join(folder, f), root)[:-len(".yaml")].replace(os.sep, "/")
                  for f in files if f.endswith(".yaml")]
    return sorted(names)


def read_stack(name: str) -> Dict:
    """A stack's definition: a catalogue name, or the path of a stack file."""
    path = name if os.path.isfile(name) else os.path.join(catalogue_dir(), name + ".yaml")
    if not os.path.isfile(path):
        raise ValueError(f"no stack {name!r}: give a stack file or one of {', '.join(catalogue())}")
    with open(path) as f:
        definition = yaml.safe_load(f)
    if not isinstance(definition, dict) or not isinstance(definition.get("experiments"), dict):
        raise ValueError(f"{path} is not a VOT stack: it has no experiments")
    return definition


def _needs_other_tracker(experiment: Dict) -> str:
    kinds = [experiment.get("type")] + [a.get("type") for a in experiment.get("analyses") or []]
    return next((OTHER_TRACKERS[k] for k in kinds if k in OTHER_TRACKERS), "")


def plan_stack(name: str) -> StackPlan:
    """The plan for ``name``; ValueError for a stack that our tracker cannot run (points, text prompts)."""
    definition = read_stack(name)
    experiments: Dict[str, Dict] = definition["experiments"]
    for key, experiment in experiments.items():
        other = _needs_other_tracker(experiment)
        if other:
            raise ValueError(f"{name}: experiment {key!r} needs {other}; LoRAT tracks boxes and masks")
    dropped = tuple(k for k, e in experiments.items()
                    if any(t.get("type") == "redetection" for t in e.get("transformers") or []))
    kept = {k: e for k, e in experiments.items() if k not in dropped}
    older = any(e.get("type") in OLDER_TOOLKIT_TYPES or e.get("realtime") for e in kept.values())
    analyses = [a for e in kept.values() for a in e.get("analyses") or []]
    tags = tuple(sorted({a["filter_tag"] for a in analyses if a.get("filter_tag")}))
    multiobject = any(bool(e.get("multiobject")) for e in kept.values())
    return StackPlan(name=name, toolkit=OLDER_TOOLKIT if older else PROJECT_TOOLKIT,
                     masks=multiobject or name in MASK_STACKS, multiobject=multiobject,
                     anchors=any(e.get("type") == "multistart" for e in kept.values()), tags=tags, dropped=dropped,
                     definition=dict(definition, experiments=kept))
