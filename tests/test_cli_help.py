"""What ``python -m training`` tells a user: help that explains every flag, progress bars on a terminal only,
training curves at the end of a run, one list syntax in the benchmark scripts."""
from __future__ import annotations

import dataclasses
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from typing import Dict, List

import pytest

from training.cli import main as cli_main
from training.config import TrainConfig

from help_texts import PYTHON, help_text as command_help

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
WEIGHTS = os.path.join(ROOT, "vot_lorat", "checkpoints", "lorat_tiny_synthetic.safetensors")
TRAIN = ["train", "--variant", "tiny", "--full-finetune", "--layer-scale-init", "1.0", "--data",
         "synthetic,sequences=50,frames=40", "--epochs", "1", "--samples-per-epoch", "48", "--batch-size", "8",
         "--workers", "0", "--threads", "1", "--log-every", "1", "--no-eval"]
EVALUATE = ["evaluate", "--variant", "tiny", "--weights", WEIGHTS, "--data",
            "synthetic,split=held_out,sequences=2,frames=30", "--threads", "1"]
# a tqdm bar: "12/30 [00:01<00:02, ...": done/total, elapsed<remaining
BAR = re.compile(r"\d+/\d+ \[\d\d:\d\d<\d\d:\d\d")


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as done:
        cli_main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def options(text: str) -> Dict[str, str]:
    """``--flag`` -> its description, from argparse's help layout (an entry starts with two spaces and a dash;
    its description follows on the same line or on the more indented lines below)."""
    out: Dict[str, str] = {}
    current = None
    for line in text.splitlines():
        entry = re.match(r"^  (-\S.*?)(?:\s{2,}(.*))?$", line)
        if entry:
            flags = [f.split()[0] for f in entry.group(1).split(", ")]
            current = next((f for f in flags if f.startswith("--")), flags[0])
            out[current] = entry.group(2) or ""
        elif current and line.startswith(" " * 10):
            out[current] += " " + line.strip()
        else:
            current = None
    return out


def test_top_level_help_names_and_explains_every_subcommand(capsys):
    text = help_text(capsys)
    names = re.search(r"\{([\w,-]+)\}", text).group(1).split(",")
    assert {"train", "evaluate", "check-data", "make-vot-sequences"} <= set(names)
    for name in names:
        assert re.search(rf"^ {{4}}{re.escape(name)}\s+\S", text, re.M), f"{name} has no description:\n{text}"


def test_train_help_gives_every_flag_a_meaning_and_its_default(capsys):
    text = help_text(capsys, "train")
    found = options(text)
    assert len(found) > 30
    for flag, description in found.items():
        assert description.strip(), f"{flag} has no description"
    for field in dataclasses.fields(TrainConfig):
        default = field.default
        flag = field.metadata.get("flag") or "--" + field.name.replace("_", "-")
        if flag not in found or default is dataclasses.MISSING:
            continue
        if default is None:
            assert re.search(r"none|default", found[flag], re.I), f"{flag}: say what happens when it is not given"
        else:
            assert f"(default: {default})" in found[flag], f"{flag}: {found[flag]!r} lacks its default {default}"


@pytest.mark.parametrize("command", ["evaluate", "check-data", "make-vot-sequences"])
def test_subcommand_help_has_a_description_and_explains_each_flag(capsys, command):
    text = help_text(capsys, command)
    description = text.split("\n\n")[1]
    assert not description.lstrip().startswith(("positional", "options")), f"{command} --help has no description"
    for flag, meaning in options(text).items():
        assert meaning.strip(), f"{command} {flag} has no description"


# ----- progress


def run_on_terminal(argv: List[str], cwd: str) -> str:
    """Run ``python -m training ARGV`` with stdout and stderr on a pseudo-terminal; returns what it showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen([sys.executable, "-m", "training", *argv], cwd=cwd, stdout=slave, stderr=slave,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def run_piped(argv: List[str], cwd: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "training", *argv], cwd=cwd, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.slow  # two runs of each command, on a pseudo-terminal and piped
@pytest.mark.parametrize("argv", [EVALUATE, TRAIN], ids=["evaluate", "train"])
def test_progress_bar_on_a_terminal_only_and_not_with_quiet(tmp_path, argv):
    shown = run_on_terminal([*argv, "--output", str(tmp_path / "tty")], str(tmp_path))
    assert BAR.search(shown), shown
    assert "/s" in shown  # a rate: frames per second, samples per second
    quiet = run_on_terminal([*argv, "--output", str(tmp_path / "quiet"), "--quiet"], str(tmp_path))
    assert not BAR.search(quiet), quiet
    piped = run_piped([*argv, "--output", str(tmp_path / "piped")], str(tmp_path))
    assert not BAR.search(piped.stderr + piped.stdout), piped.stderr


# ----- curves


def test_a_run_ends_with_its_training_curves(tmp_path):
    assert cli_main([*TRAIN, "--output", str(tmp_path), "--quiet"]) == 0
    with open(tmp_path / "training-curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# ----- one list syntax


@pytest.mark.slow  # a Python that imports torch per script (shared with test_readme's recipe checks)
@pytest.mark.parametrize("script", sorted(f for f in os.listdir(os.path.join(ROOT, "benchmarks"))
                                          if f.endswith("_speed.py")))
def test_benchmark_lists_are_comma_separated(script):
    """Every list option of every benchmark takes ``1,4,16``, never ``1 4 16`` (argparse shows ``X [X ...]``)."""
    text = command_help((PYTHON, os.path.join(ROOT, "benchmarks", script), "--help"))  # shared with test_readme
    spaced = re.findall(r"--[\w-]+ (\w+) \[\1 \.\.\.\]", text)
    assert not spaced, f"{script}: space-separated lists {spaced}; use comma-separated values"


