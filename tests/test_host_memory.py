"""glibc malloc settings of the frame-reading processes (each case in its own interpreter: they are global)."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

CHILD = """
import os
import numpy as np
from vot_lorat.host_memory import reuse_freed_memory

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

before = rss_mb()
assert reuse_freed_memory(), "mallopt refused the settings"
reserved = rss_mb()
frame = np.empty((1080, 1920, 3), dtype=np.uint8)
frame.fill(1)
in_use = rss_mb()
del frame
print(reserved - before, in_use - reserved, rss_mb() - reserved)
"""


@pytest.mark.skipif(platform.system() != "Linux" or not platform.libc_ver()[0] == "glibc", reason="glibc only")
def test_reserve_is_faulted_in_and_frames_reuse_it():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split()
    reserved, frame_growth, after_free = (float(v) for v in out)
    assert reserved >= 60  # the 64 MB reserve is in memory and stays there after its blocks are freed
    assert frame_growth < 1  # a 6 MB frame takes reserved pages: nothing new to fault in
    assert after_free > -1  # and freeing it gives nothing back to the kernel
