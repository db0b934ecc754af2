"""What the benchmark scripts share: the common options, the machine description, the timing loop,
peak memory, and the markdown / JSON reports.

Every script prints its tables to stdout and, with ``--markdown PATH`` / ``--json PATH``, writes them
to files; the JSON holds ``machine``, ``torch``, ``device``, ``settings`` and ``rows``.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

from vot_lorat.device import DeviceError, resolve_device


def device_arg(spec: str) -> torch.device:
    """``--device`` as a checked torch.device (an argparse type): a missing GPU is a one-line usage error."""
    try:
        return resolve_device(spec)
    except DeviceError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--device (a torch.device), --threads, --json and --markdown."""
    parser.add_argument("--device", type=device_arg, default="auto",
                        help="auto (cuda when available, else cpu), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="write the settings and numbers here")
    parser.add_argument("--markdown", type=Path, help="write the printed tables here too")


def apply_threads(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)


def csv_list(text: str) -> List[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]`` (an argparse type)."""
    return [item.strip() for item in text.split(",") if item.strip()]


def csv_ints(text: str) -> List[int]:
    return [int(item) for item in csv_list(text)]


def csv_choices(choices: Sequence[str]) -> Callable[[str], List[str]]:
    """An argparse type: a comma-separated list whose items are each one of ``choices``."""
    def parse(text: str) -> List[str]:
        items = csv_list(text)
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"{', '.join(unknown)}: choose from {', '.join(choices)}")
        return items
    return parse


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def machine_info(device: torch.device | str) -> Dict[str, Any]:
    device = torch.device(device)
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
    }


def synchronize(device: torch.device | str) -> None:
    """Wait for the queued GPU work, so a wall-clock interval covers it; nothing to wait for on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[int], Any], warmup: int, iters: int, device: torch.device | str) -> List[float]:
    """Call ``fn(i)`` for ``i`` in ``range(warmup + iters)``; return the last ``iters`` calls' times in ms.

    The device is synchronised before and after every timed call, so each time is one call's full
    latency (its kernels included) and calls do not overlap.
    """
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(warmup, warmup + iters):
        synchronize(device)
        start = time.perf_counter()
        fn(i)
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def summarize(times_ms: Sequence[float]) -> Dict[str, float]:
    """mean / median / min / standard deviation of a list of ms."""
    return {"mean_ms": statistics.fmean(times_ms), "median_ms": statistics.median(times_ms),
            "min_ms": min(times_ms), "std_ms": statistics.pstdev(times_ms)}


class PeakMemory:
    """Peak memory of what runs between ``start()`` and ``stop()``, in MiB.

    CUDA: ``torch.cuda.max_memory_allocated`` (tensors only, not the caching allocator's reserve).
    CPU: how far the process's peak resident set size (``ru_maxrss``) rises above the resident size at
    ``start()``, which first returns freed heap memory to the OS (glibc ``malloc_trim``) and resets the
    peak to the current size (Linux ``/proc/self/clear_refs``); where the reset fails, the peak of
    anything earlier in the process counts too and ``kind`` says so.
    """

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.kind = "cuda_max_allocated" if self.device.type == "cuda" else "cpu_peak_rss_increase"
        self._base = 0.0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        gc.collect()
        _trim_heap()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # peak RSS := current RSS
        except OSError:
            self.kind = "cpu_peak_rss_increase_over_earlier_peak"
        self._base = _max_rss_mib()

    def stop(self) -> float:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20
        return _max_rss_mib() - self._base


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc), so that a setting cannot reuse it unseen."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _max_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS)
    scale = 2 ** 20 if platform.system() == "Darwin" else 2 ** 10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2 ** 20


def markdown_table(headers: Sequence[str], cells: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def emit_tables(sections: Sequence[Tuple[str, str]], markdown: Optional[Path]) -> None:
    """Print each (title, table) section and write them to ``markdown`` when given."""
    text = "".join(f"\n{title}\n\n{table}\n" for title, table in sections)
    print(text, end="")
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(text.lstrip("\n"))


def write_json(path: Optional[Path], device: torch.device | str, settings: Dict[str, Any],
               rows: List[Dict[str, Any]], **extra: Any) -> None:
    """{machine, torch, device, settings, rows, **extra} as indented JSON; nothing when ``path`` is None."""
    if path is None:
        return
    report = {"machine": machine_info(device), "torch": torch.__version__, "device": device_name(device),
              "settings": settings, "rows": rows, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
