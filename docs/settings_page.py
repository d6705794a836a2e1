"""Writes ``docs/reference/settings.md``, the settings reference, from :data:`beadseg.settings.SETTINGS` (the
one schema every command checks): ``python docs/settings_page.py``. A test keeps the page in step."""

from __future__ import annotations

from pathlib import Path

from beadseg.formats.images import LABEL_FORMATS
from beadseg.models.registry import REGISTRY
from beadseg.packaging.export import EXPORTERS
from beadseg.settings import BY_NAME, FREE, FREE_UNDER, SETTINGS

PAGE = Path(__file__).parent / "reference" / "settings.md"


def cell(text: str) -> str:
    """``text`` as a Markdown table cell (its ``|`` escaped)."""
    return text.replace("|", "\\|")


def settings_page() -> str:
    """The page: per command, each checked key and what it accepts; then the keys checked wherever they sit."""
    parts = ["# Settings reference\n",
             "Every setting below is checked, typed and range-checked, before a command reads data or claims an "
             "output; an error names the key and what it accepts. Written by `python docs/settings_page.py` from "
             "`beadseg.settings` (each command's `--help` prints the same).\n"]
    for command, fields in SETTINGS.items():
        parts.append(f"## beadseg-{command}\n\n| key | accepts |\n|---|---|")
        parts += [f"| `{key}` | {cell(field.accepts())} |" for key, field in fields.items()]
        parts.append("")
    parts.append("## Checked wherever they sit\n\nA key of this last name anywhere in a command's config (an "
                 "augmentation's `p`, a scheduler's `factor`):\n\n| name | accepts |\n|---|---|")
    parts += [f"| `{name}` | {cell(field.accepts())} |" for name, field in BY_NAME.items()]
    parts.append("\n## Networks: `model.*`\n\nThe network registry (`beadseg.models.registry`) checks a model's "
                 "description, the same for a config and a checkpoint:\n\n| architecture | field | accepts |\n|---|---|---|")
    parts += [f"| `{name}` | `{field_name}` | {cell(field.accepts())} |" for name, entry in REGISTRY.items()
              for field_name, field in entry.fields.items()]
    parts.append("\n## Names from a registry\n\nThese settings name an entry of a registry, the one list of those "
                 "names; the command line checks them before it starts, the library before any work:\n\n"
                 "| command | key | accepts |\n|---|---|---|")
    parts += [f"| beadseg-predict | `label_format` | one of {', '.join(LABEL_FORMATS)} |",
              f"| beadseg-export | `format` | one of {', '.join(EXPORTERS)} |"]
    parts.append("\n## Not checked here, and why\n\n| key | why |\n|---|---|")
    parts += [f"| `{key}` | {why} |" for key, why in FREE.items()]
    parts += [f"| `{prefix}*` | {why} |" for prefix, why in FREE_UNDER.items()]
    parts.append("\nAny other number or true/false setting: of its default's kind.\n")
    return "\n".join(parts)


if __name__ == "__main__":
    PAGE.write_text(settings_page())
    print(f"wrote {PAGE}")
