"""The CLI as a package: every command has examples in its --help, shared options are defined
once (one help, one type; the default each command passes in), and every option the README and
docs show exists."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cli import main
from pipeline.writers import WRITERS

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(main.commands)


def options(command: click.Command) -> dict[str, click.Parameter]:
    return {name: p for p in command.params for name in p.opts if name.startswith("--")}


@pytest.mark.parametrize("name", ["", *COMMANDS])
def test_every_help_ends_with_examples_of_that_command(name: str) -> None:
    result = CliRunner().invoke(main, [name, "--help"] if name else ["--help"])
    assert result.exit_code == 0, result.output
    help_text, _, block = result.output.partition("\n  Examples:\n\n")
    assert block, f"carat-cli {name} --help has no Examples block"
    lines = [line.strip() for line in block.strip().splitlines()]
    assert lines and all("carat-cli" in line for line in lines)
    assert any(f"carat-cli {name}".strip() in line for line in lines)


def test_segment_options_are_defined_once_with_each_commands_default() -> None:
    sources = "".join(p.read_text() for p in (ROOT / "carat_cli").glob("*.py"))
    sources += (ROOT / "cli.py").read_text()
    for flag in ("--segments", "--min-segment", "--max-segment", "--workers", "--device"):
        assert sources.count(f'"{flag}"') == 1, flag
    predict, extract = options(main.commands["predict"]), options(main.commands["extract"])
    for flag in ("--segments", "--min-segment", "--max-segment"):
        assert predict[flag].help == extract[flag].help and predict[flag].type == extract[flag].type
    assert predict["--segments"].default is None  # the model's: as its training data was cut
    assert "the model's" in predict["--segments"].show_default
    assert extract["--segments"].default == "none"  # whole clips unless asked
    assert sources.count("tqdm(") == 1  # one progress bar


def test_predict_has_an_option_per_writer() -> None:
    predict = options(main.commands["predict"])
    for writer in WRITERS.values():
        if writer.name != "table":  # the default: printed when no other is asked for
            assert writer.describes in predict[f"--{writer.flag}"].help


def documented_calls() -> list[tuple[str, str, str]]:
    """(file, command, option) for every ``carat-cli COMMAND ... --option`` in README and docs."""
    calls = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in path.read_text(encoding="utf-8").splitlines():
            for match in re.finditer(r"carat-cli ([a-z]+)([^`#|]*)", line):
                command, rest = match.groups()
                calls += [(path.name, command, flag) for flag in re.findall(r"--[a-z-]+", rest)]
    return calls


def test_every_documented_option_exists() -> None:
    calls = documented_calls()
    assert len(calls) > 30  # the README and docs show the CLI at work
    missing = [
        call
        for call in calls
        if call[1] in main.commands
        and call[2] != "--help"
        and call[2] not in options(main.commands[call[1]])
    ]
    assert not missing
