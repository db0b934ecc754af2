"""The ``--help`` of the commands the tests read, each run once per test session: starting a Python that imports
torch takes seconds, and the README recipes and the CLI tests ask for the same ones."""
from __future__ import annotations

import functools
import os
import subprocess
from typing import Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")


@functools.lru_cache(maxsize=None)
def help_text(cmd: Tuple[str, ...]) -> str:
    """What ``cmd`` (ending in ``--help``) prints, run from the repository root; it must succeed."""
    result = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=120, env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}"
    return result.stdout
