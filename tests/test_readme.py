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


README_LINES = 200  # a front door: the rest is in docs/


def shown_commands(text: str) -> list[list[str]]:
    """Every command in the ```bash blocks of a page, as argv lists: comments dropped, `&&` chains split,
    backslash continuations joined."""
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if not line or line.startswith("#"):
                continue
            for part in line.split("&&"):
                argv = shlex.split(part)
                while argv and "=" in argv[0] and not argv[0].startswith("-"):  # VAR=value prefixes
                    argv = argv[1:]
                if argv and argv[0] != "export":
                    commands.append(argv)
    return commands


def command_problem(argv: list[str]) -> str | None:
    """Why a shown command would not run as written here (None when it parses): bench's own commands go
    through bench's parser, `python -m` modules must exist, files run must be in the repository."""
    import importlib.util

    from harness.cli.main import build_parser
    from harness.exits import UsageError

    program = Path(argv[0]).name
    if program == "bench":
        try:
            build_parser().parse_args(argv[1:])
        except (UsageError, SystemExit) as exc:
            return f"{' '.join(argv)}: {exc}"
    elif program.startswith("python") and "-m" in argv:
        module = argv[argv.index("-m") + 1]
        if module not in ("venv", "pip") and importlib.util.find_spec(module) is None:
            return f"{' '.join(argv)}: no module {module}"
    elif program in ("bash", "sh") and not (REPO / argv[1]).is_file():
        return f"{' '.join(argv)}: no file {argv[1]}"
    return None


def test_the_readme_is_a_front_door_and_every_command_shown_there_and_in_docs_parses():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= README_LINES
    pages = [readme, *(page.read_text() for page in sorted((REPO / "docs").glob("*.md")))]
    commands = [argv for page in pages for argv in shown_commands(page)]
    assert sum(Path(argv[0]).name == "bench" for argv in commands) >= 20
    problems = [p for p in map(command_problem, commands) if p]
    assert not problems, "\n".join(problems)


def test_the_command_check_finds_a_command_that_does_not_parse():
    bad = shown_commands("```bash\nbench run --frobnicate  # no such option\n.venv/bin/python -m benchmarks.nope\n"
                         "bench report --format md && bench rn\n```\n")
    assert [command_problem(argv) is not None for argv in bad] == [True, True, False, True]
