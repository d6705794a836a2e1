"""The documentation keeps up with the code: every ``beadseg-*`` command the README and the guides show composes
and passes the settings check, and the settings reference is the one the schema writes."""

import re
import shlex
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from beadseg.config import CONFIG_DIR
from beadseg.settings import SETTINGS, check_settings

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shown_commands() -> list[tuple[str, str, list[str]]]:
    """``(page, command, overrides)`` of every ``beadseg-<command>`` line in a shell block of the pages; a sweep's
    first value of each swept key, a ``<placeholder>`` read as ``x``; lines built from shell variables left out."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```(?:bash|console|sh)?\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"<[^>]*>", "x", line.split("  #")[0]).strip()
                match = re.match(r"^(?:\.venv/bin/)?beadseg-(\w+)\b(.*)$", line)
                if not match or match[1] not in SETTINGS or "$" in line:
                    continue
                tokens = shlex.split(match[2])
                sweep = "-m" in tokens
                overrides = [re.sub(r",[^\[\]]*$", "", token) if sweep and "[" not in token else token
                             for token in tokens if "=" in token and not token.startswith(("-", "["))]
                found.append((page.name, match[1], overrides))
    return found


def test_the_guides_show_commands_of_every_kind():
    commands = {command for _, command, _ in shown_commands()}
    assert len(shown_commands()) > 30 and {"train", "predict", "eval", "export"} <= commands


@pytest.mark.parametrize("page, command, overrides", shown_commands(),
                         ids=lambda value: value if isinstance(value, str) else None)
def test_every_command_the_guides_show_composes_and_passes_the_settings_check(page, command, overrides):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(command, overrides)
    check_settings(cfg, command)


def test_the_settings_reference_is_the_one_the_schema_writes():
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from settings_page import PAGE, settings_page
    finally:
        sys.path.pop(0)
    assert PAGE.read_text() == settings_page(), "run: python docs/settings_page.py"
