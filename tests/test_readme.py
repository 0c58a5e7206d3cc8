"""The README opens with the set-up-and-run command and the test command, and CI runs that very test command."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _first_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block and text.index(block.group(0)) < text.index("\n## "), "the README must open with its commands"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_readme_opens_with_a_run_command_and_a_test_command():
    run, test = _first_commands()
    assert run.endswith("bench run") and "torch==2.13.0" in run
    assert test.endswith("python -m pytest -q") and "torch==2.13.0" in test


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = _first_commands()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert test in [line.strip() for line in ci if not line.lstrip().startswith("#")]
