"""Every code block of the READMEs and docs runs as written, so that a user who copies one gets what it promises.

Rules the documents follow (this test enforces them):

- every fenced block names its language: ``bash``, ``python``, or ``text`` (sample output, trees, tables);
- a ``bash`` or ``python`` block runs as written, in its own fresh copy of the repository (the copy's root is
  the working directory, ``.venv`` is the real environment), so it must not depend on another block's files;
- an HTML comment on the line before a block may say how it is tested:
  ``<!-- readme-test: slow -->`` runs it under the ``slow`` marker (the fast tier leaves it out);
  ``<!-- readme-test: after-demo -->`` runs it (slow too) in the copy where README.md's
  ``./workspace_setup.sh --demo`` block ran, so it may use ``demo_workspace/``;
  ``<!-- readme-test: flags-only REASON -->`` marks a recipe that cannot run here (official weights, full
  datasets, GPUs, a download, or a measurement that takes many minutes; REASON says which): every ``--flag`` of
  its commands must be one that the command's own ``--help`` lists, so a renamed or removed option cannot leave
  the documents behind;
  ``<!-- readme-test: output-of-previous -->`` before a ``text`` block: what the code block before it prints,
  ``<!-- readme-test: output-of-demo -->``: what the demo block prints. Its lines must appear in that order in
  the output; ``…`` stands for one word that changes from run to run (a speed, a time).
"""
from __future__ import annotations

import glob
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import pytest

from help_texts import PYTHON, help_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READMES = ("README.md", "benchmarks/README.md", "vot_lorat/checkpoints/README.md",
           *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))))
LANGUAGES = ("bash", "python", "text")
FENCE = re.compile(r"^```(\S*)\s*$")
ANNOTATION = re.compile(
    r"^<!--\s*readme-test:\s*(slow|after-demo|flags-only|output-of-previous|output-of-demo)\b\s*(.*?)\s*-->\s*$")
OUTPUT_MODES = ("output-of-previous", "output-of-demo")
# the copy leaves out what .gitignore names: environments, caches, run and workspace folders
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", ".venv-*", "__pycache__", "*.pyc", "*.egg-info", "build",
                                     "dist", ".pytest_cache", ".ruff_cache", "runs", "workspaces", "demo_workspace",
                                     "vot_workspace")
# `./run_tests.sh` is this test suite: rerunning it from inside itself would never end. CI runs
# `./run_tests.sh --all` (see test_the_test_command_is_what_ci_runs), which is what the README promises of it.
SUITE_COMMAND = "./run_tests.sh"
DEMO_COMMAND = "./workspace_setup.sh --demo"
FAST_TIMEOUT_S, SLOW_TIMEOUT_S = 300, 1200


@dataclass(frozen=True)
class Block:
    readme: str
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    mode: str  # run, slow, after-demo or flags-only
    reason: str

    @property
    def id(self) -> str:
        return f"{self.readme}:{self.line}"


def read_blocks(readme: str) -> List[Block]:
    """The fenced code blocks of ``readme`` (a path relative to the repository root), in file order."""
    with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
        lines = f.read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        assert end is not None, f"{readme}:{i + 1}: code block never closed"
        note = ANNOTATION.match(lines[i - 1]) if i > 0 else None
        mode, reason = (note.group(1), note.group(2)) if note else ("run", "")
        blocks.append(Block(readme, i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n", mode, reason))
        i = end + 1
    return blocks


ALL_BLOCKS = [b for readme in READMES for b in read_blocks(readme)]
CODE_BLOCKS = [b for b in ALL_BLOCKS if b.language in ("bash", "python")]


def expected_outputs() -> Dict[str, Block]:
    """Code block id -> the sample output the documents show for it."""
    out: Dict[str, Block] = {}
    previous: Optional[Block] = None
    for block in ALL_BLOCKS:
        if block.mode == "output-of-previous":
            assert previous is not None and previous.readme == block.readme, \
                f"{block.id}: output-of-previous needs a code block before it in the same document"
            out[previous.id] = block
        elif block.mode == "output-of-demo":
            out[next(b for b in CODE_BLOCKS if _is_demo(b)).id] = block
        if block.language in ("bash", "python"):
            previous = block
    return out


def check_output(expected: Block, output: str) -> None:
    """The expected block's lines appear in the output in that order; ``…`` matches one changing word, and runs of
    spaces (a table's alignment, which a changing word's width moves) match any run of spaces."""
    lines = [" ".join(line.split()) for line in output.splitlines()]
    at = 0
    for want in (" ".join(line.split()) for line in expected.text.splitlines() if line.strip()):
        pattern = re.compile(r"\S+".join(re.escape(part) for part in want.split("…")) + "$")
        found = next((i for i in range(at, len(lines)) if pattern.match(lines[i])), None)
        assert found is not None, (f"{expected.id}: the command no longer prints {want!r} (after line {at}); "
                                   f"it printed:\n" + "\n".join(lines[-60:]))
        at = found + 1


def _param(block: Block):
    marks = [pytest.mark.slow] if block.mode in ("slow", "after-demo") else []
    return pytest.param(block, id=block.id, marks=marks)


def test_every_block_names_its_language():
    unnamed = [f"{b.id} ({b.language or 'no language'})" for b in ALL_BLOCKS if b.language not in LANGUAGES]
    assert not unnamed, f"fence these as bash, python or text (sample output): {', '.join(unnamed)}"


def test_annotations():
    assert all(b.reason for b in CODE_BLOCKS if b.mode == "flags-only"), "a flags-only block must give its reason"
    assert all(b.mode == "slow" for b in CODE_BLOCKS if _is_demo(b)), "the demo block takes minutes: mark it slow"
    outputs = [b for b in ALL_BLOCKS if b.mode in OUTPUT_MODES]
    assert all(b.language == "text" for b in outputs), "sample output is a text block"
    assert all(b.mode not in OUTPUT_MODES for b in CODE_BLOCKS), "output annotations go on text blocks"
    checked = expected_outputs()
    assert len(checked) == len(outputs), "two sample outputs for one command"
    assert all(b.mode != "flags-only" for b in CODE_BLOCKS if b.id in checked), "a flags-only block prints nothing"


def test_the_test_command_is_what_ci_runs():
    """CI runs the whole suite, the command the README names for it."""
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert f"exec {SUITE_COMMAND} --all\n" in f.read()
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert f"{SUITE_COMMAND} --all" in readme and re.search(rf"^{re.escape(SUITE_COMMAND)}\s", readme, re.M)


def fresh_copy(dest: str) -> str:
    """The working tree (what a fresh clone has) copied to ``dest``, sharing the installed environment.

    The environment must be up to date, so that the copy's ``install.sh`` returns at once: a ``pip install -e``
    from the copy would point the shared environment's editable install at a folder that is soon deleted."""
    shutil.copytree(ROOT, dest, ignore=COPY_IGNORE)
    os.symlink(os.path.join(ROOT, ".venv"), os.path.join(dest, ".venv"))
    check = subprocess.run([os.path.join(dest, "install.sh"), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, f".venv is out of date: run ./install.sh before this test ({check.stderr})"
    return dest


def _commands_of(block: Block) -> List[str]:
    return [line.split("#")[0].strip() for line in block.text.splitlines()]


def run_block(block: Block, cwd: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=cwd)
    timeout = FAST_TIMEOUT_S if block.mode == "run" else SLOW_TIMEOUT_S
    if block.language == "python":
        cmd = [os.path.join(cwd, ".venv", "bin", "python"), "-c", block.text]
    else:
        text = "".join(line for line, command in zip(block.text.splitlines(keepends=True), _commands_of(block))
                       if command.split()[:1] != [SUITE_COMMAND])
        cmd = ["bash", "-e", "-o", "pipefail", "-c", text]
    return subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)


def _is_demo(block: Block) -> bool:
    return block.readme == "README.md" and DEMO_COMMAND in _commands_of(block)


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory) -> Tuple[str, subprocess.CompletedProcess]:
    """A copy of the repository in which README.md's demo block has run (once: it takes minutes)."""
    demo = [b for b in CODE_BLOCKS if _is_demo(b)]
    assert len(demo) == 1, f"README.md should have one block that runs {DEMO_COMMAND}"
    cwd = fresh_copy(str(tmp_path_factory.mktemp("demo") / "repo"))
    return cwd, run_block(demo[0], cwd)


EXPECTED = expected_outputs()


@pytest.mark.parametrize("block", [_param(b) for b in CODE_BLOCKS if b.mode != "flags-only"])
def test_block_runs_as_written(block: Block, tmp_path, request):
    if _is_demo(block):
        _, result = request.getfixturevalue("demo_repo")
    elif block.mode == "after-demo":
        cwd, demo = request.getfixturevalue("demo_repo")
        assert demo.returncode == 0, "README.md's demo block failed; this block needs its demo_workspace"
        result = run_block(block, cwd)
    else:
        result = run_block(block, fresh_copy(str(tmp_path / "repo")))
    assert result.returncode == 0, f"{block.id} failed (exit {result.returncode}):\n{block.text}\n" \
                                   f"--- output (last 4000 characters) ---\n{result.stdout[-4000:]}"
    expected = EXPECTED.get(block.id)
    if expected is not None:
        check_output(expected, result.stdout)


# ----- flags-only recipes


def commands(bash: str) -> List[List[str]]:
    """The simple commands of a bash block as argument lists: continuations joined, comments dropped, split at
    ``;``, ``&&``, ``||`` and ``|``; the ``[--option value]`` notation of optional arguments unwrapped."""
    out, pending = [], ""
    for line in re.sub(r"\\\n", " ", bash).splitlines():
        pending += line.replace("[", " ").replace("]", " ") + "\n"
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quoted argument goes on over the next line
            continue
        pending = ""
        current: List[str] = []
        for word in words + [";"]:
            if word in (";", "&&", "||", "|"):
                if current:
                    out.append(current)
                current = []
            else:
                current.append(word)
    return out


# programs whose --help lists their options; a subcommand (the first word that is not an option) selects its help
SUBCOMMAND_PROGRAMS = ("training", "vot")


def help_command(argv: List[str]) -> Optional[Tuple[Tuple[str, ...], List[str]]]:
    """For one command of a recipe, the command that prints its help and the arguments that help must cover,
    or None for shell utilities (cd, cp, ...) that the READMEs use with no options of their own.

    ``torchrun ... -m training train ...`` gives two: torchrun's own options (before ``-m``) are checked
    by :func:`recipe_checks` against torchrun's help."""
    program = os.path.basename(argv[0])
    python = PYTHON
    if program in ("python", "python3") and len(argv) > 2 and argv[1] == "-m":
        base, module, rest = (python, "-m", argv[2]), argv[2], argv[3:]
    elif program in ("python", "python3") and len(argv) > 1 and argv[1].endswith(".py"):
        base, module, rest = (python, os.path.join(ROOT, argv[1])), argv[1], argv[2:]
    elif program.endswith(".sh"):
        base, module, rest = (os.path.join(ROOT, argv[0]),), program, argv[1:]
    elif program == "vot":
        base, module, rest = (os.path.join(os.path.dirname(PYTHON), "vot"),), "vot", argv[1:]
    else:
        return None
    if module in SUBCOMMAND_PROGRAMS and rest and not rest[0].startswith("-"):
        base, rest = base + (rest[0],), rest[1:]
    return base + ("--help",), rest


def recipe_checks(argv: List[str]) -> List[Tuple[Tuple[str, ...], List[str]]]:
    if os.path.basename(argv[0]) == "torchrun":
        split = argv.index("-m")
        torchrun = (PYTHON, "-m", "torch.distributed.run", "--help")
        return [(torchrun, argv[1:split]), *recipe_checks(["python", *argv[split:]])]
    found = help_command(argv)
    return [found] if found else []


def _flags(words: List[str]) -> List[str]:
    return [w.split("=", 1)[0] for w in words if re.match(r"^--[A-Za-z]", w)]


# slow: each command's --help starts a Python that imports torch
@pytest.mark.parametrize("block", [pytest.param(b, id=b.id, marks=[pytest.mark.slow])
                                   for b in CODE_BLOCKS if b.mode == "flags-only"])
def test_recipe_flags_exist(block: Block):
    assert block.language == "bash", f"{block.id}: only bash recipes can be checked flag by flag"
    unknown = []
    checked = 0
    for argv in commands(block.text):
        for help_cmd, args in recipe_checks(argv):
            checked += 1
            program = help_cmd[-2] if help_cmd[-2].endswith((".py", ".sh")) else help_cmd[0]
            assert os.path.isfile(program), f"{block.id}: {program} does not exist"
            if not _flags(args):  # nothing to look up (and a script without options may not know --help)
                continue
            text = help_text(help_cmd)
            unknown += [f"{flag} ({' '.join(help_cmd[-3:-1])})" for flag in _flags(args)
                        if not re.search(re.escape(flag) + r"(?![\w-])", text)]
    assert checked, f"{block.id}: no command the test knows how to check"
    assert not unknown, f"{block.id}: options not in the command's --help: {', '.join(unknown)}"
