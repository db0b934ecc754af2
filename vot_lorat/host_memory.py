"""glibc malloc settings for a process that decodes a large frame per request.

A decoded 1080p frame is 6 MB. By default glibc gives such blocks back to the kernel when they are freed
(or keeps them in the arena of the thread that allocated them, a reading thread's, and trims them there),
so the next frame's buffer is fresh memory that the kernel must fault in and zero page by page while the
decoder writes it: a 4.6 ms decode then takes 8.4 ms, frame after frame (benchmarks/README.md, the frame
pipeline). Keeping freed memory in one arena lets every frame reuse the pages of an earlier one.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

import numpy as np

log = logging.getLogger(__name__)

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks up to a 4K frame (24 MB) come from the heap
_TRIM_THRESHOLD = 512 << 20  # free memory the process keeps instead of returning it to the kernel
_RESERVE = 64 << 20  # memory made ready at start: a few frames in flight, up to 4K
_RESERVE_BLOCK = 16 << 20  # under the mmap threshold, so that the blocks come from the heap and stay there


def reuse_freed_memory(reserve: int = _RESERVE) -> bool:
    """Make glibc keep freed frame buffers for reuse: one arena for all threads, large blocks from the heap,
    no trimming; then fault in ``reserve`` bytes of heap, so that the first frames find memory ready too.
    Call it before starting threads. False (and nothing changed) where malloc is not glibc's."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    done = all(mallopt(param, value) == 1 for param, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)))
    if not done:
        log.debug("mallopt refused a setting; freed frame buffers may be returned to the kernel")
        return False
    blocks = [np.empty(_RESERVE_BLOCK, dtype=np.uint8) for _ in range(reserve // _RESERVE_BLOCK)]
    for block in blocks:
        block.fill(0)  # written, so that the kernel maps the pages now
    return True
