"""Every example in beadseg's docstrings runs and prints what it says (numpydoc ``Examples``, as scikit-image)."""

import doctest
import importlib
from pathlib import Path

import numpy as np
import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "beadseg"
WITH_EXAMPLES = sorted(".".join(path.relative_to(SOURCE.parent).with_suffix("").parts)
                       for path in SOURCE.rglob("*.py") if ">>> " in path.read_text())


def test_the_pure_functions_have_examples():
    assert {"beadseg.beads.instances", "beadseg.beads.measure", "beadseg.formats.rois",
            "beadseg.settings"} <= set(WITH_EXAMPLES)


@pytest.mark.parametrize("module", WITH_EXAMPLES)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), extraglobs={"np": np}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
