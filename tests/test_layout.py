"""The package's floors (docs/architecture.md): every module imports only from its own floor or below, no two packages import
each other, and no modules import each other round a circle, inside a package or across."""

import ast
from pathlib import Path

import pytest

import beadseg

ROOT = Path(beadseg.__file__).parent

# docs/architecture.md's order, ground floor first: the bead domain (and the worker pool) at the bottom; data, models, metrics
# above it, with the datasets training reads and the file formats prediction writes; training, inference, evaluation
# and packaging above those; analysis, report and napari on top; the entry points last.
FLOORS = [
    {"system", "files", "settings", "losses", "pretrained"},
    {"tables", "beads", "workers"},
    {"data", "models", "plots"},
    {"metrics", "checkpoint", "config", "datasets", "formats"},
    {"inference", "evaluation", "training", "packaging"},
    {"analysis", "report", "napari_plugin"},
    {"cli", "train"},
]
FLOOR = {package: level for level, packages in enumerate(FLOORS) for package in packages}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """The beadseg modules one file imports, at the top or inside a function (``from beadseg import plots``:
    ``beadseg.plots``; ``from beadseg.data import io``: ``beadseg.data.io`` where that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.startswith("beadseg.")}
    return found


def module_graph() -> dict[str, set[str]]:
    """beadseg's modules and the beadseg modules each imports (names that are no module, e.g. a class, dropped)."""
    files = {module_name(path): path for path in ROOT.rglob("*.py")}
    return {name: {other for other in imported_modules(path) if other in files and other != name}
            for name, path in files.items()}


def package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else module


def test_every_module_imports_only_from_its_floor_or_below():
    graph = module_graph()
    assert {"beadseg.beads.postprocess", "beadseg.inference.task", "beadseg.cli.predict"} <= set(graph)
    unplaced = sorted({package(module) for module in graph if module != "beadseg"} - set(FLOOR))
    assert unplaced == [], "a new package: give it its floor in FLOORS (and docs/architecture.md)"
    upward = [f"{module} imports {other}" for module, others in graph.items() if module != "beadseg"
              for other in others if FLOOR[package(other)] > FLOOR[package(module)]]
    assert upward == []


def test_no_two_packages_import_each_other():
    packages: dict[str, set[str]] = {}
    for module, others in module_graph().items():
        packages.setdefault(package(module), set()).update(package(other) for other in others)
    cycles = sorted({tuple(sorted((a, b))) for a in packages for b in packages[a] - {a} if a in packages.get(b, ())})
    assert cycles == []


def test_no_modules_import_each_other_round_a_circle():
    graph = module_graph()
    state: dict[str, str] = {}
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for other in sorted(graph[module]):
            if state.get(other) == "open":
                circles.append(" -> ".join(path[path.index(other):] + [module, other]) if other in path else other)
            elif other not in state:
                visit(other, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    assert circles == []


def test_the_check_sees_a_planted_circle_and_an_upward_import(tmp_path, monkeypatch):
    graph = module_graph()
    graph["beadseg.beads.measure"] = graph["beadseg.beads.measure"] | {"beadseg.inference.finish"}
    monkeypatch.setattr(f"{__name__}.module_graph", lambda: graph)
    for check in (test_every_module_imports_only_from_its_floor_or_below, test_no_modules_import_each_other_round_a_circle):
        try:
            check()
        except AssertionError:
            continue
        raise AssertionError(f"{check.__name__} missed beads.measure importing inference.finish")


def test_no_package_or_top_level_module_holds_more_than_15_percent_of_the_lines():
    lines: dict[str, int] = {}
    for path in ROOT.rglob("*.py"):
        part = path.relative_to(ROOT).parts[0]
        lines[part] = lines.get(part, 0) + len(path.read_text().splitlines())
    total = sum(lines.values())
    assert {part: round(100 * count / total, 1) for part, count in lines.items() if count > 0.15 * total} == {}


def test_inference_and_evaluation_load_checkpoints_without_training():
    graph = module_graph()
    for module in graph:
        if package(module) in ("inference", "evaluation", "packaging"):
            assert not any(package(other) == "training" for other in graph[module]), module


def private_overrides(cls: type) -> list[str]:
    """The methods of ``cls`` that replace a private one of a Lightning class it derives from."""
    lightning = [base for base in cls.__mro__[1:] if base.__module__.startswith(("pytorch_lightning",
                                                                                  "lightning_fabric"))]
    return [f"{cls.__qualname__}.{name}" for name, value in vars(cls).items()
            if name.startswith("_") and not name.startswith("__") and callable(value)
            and any(name in vars(base) for base in lightning)]


def test_no_class_overrides_a_private_method_of_lightning():
    """Lightning's private methods change between minor versions without notice: beadseg extends it through its
    public hooks and plugins only."""
    import importlib
    import inspect
    import pkgutil

    from pytorch_lightning.callbacks import ModelCheckpoint

    class Planted(ModelCheckpoint):
        def _save_checkpoint(self, trainer, filepath):
            return None

    assert private_overrides(Planted) == [Planted.__qualname__ + "._save_checkpoint"]  # the check sees one
    overriding = []
    for info in pkgutil.walk_packages([str(ROOT)], "beadseg."):
        if ".napari_plugin" in info.name or info.name.startswith("beadseg.cli"):
            continue  # Qt, entry points: no Lightning subclasses
        module = importlib.import_module(info.name)
        overriding += [name for _, cls in inspect.getmembers(module, inspect.isclass) if cls.__module__ == info.name
                       for name in private_overrides(cls)]
    assert not overriding, overriding


def test_lightning_is_pinned_below_its_next_major_version_and_the_installed_one_is_inside():
    from importlib.metadata import version

    import tomllib
    from packaging.requirements import Requirement

    dependencies = tomllib.loads((ROOT.parents[1] / "pyproject.toml").read_text())["project"]["dependencies"]
    lightning = next(Requirement(d) for d in dependencies if Requirement(d).name == "pytorch-lightning")
    bounds = {spec.operator: spec.version for spec in lightning.specifier}
    assert "<" in bounds and bounds["<"].split(".")[1:] in ([], ["0"]), lightning  # below the next major
    assert version("pytorch-lightning") in lightning.specifier


def test_format_names_are_spelled_once_in_their_registries(compose_config):
    """The schema names no format: export's ``format`` and predict's ``label_format`` are checked through the
    registries they choose from (their keys the one list), on the command line before Hydra makes a run
    directory and by the library before any work; a name a registry lacks is refused naming the key."""
    from beadseg.cli.app import preflight
    from beadseg.formats.images import LABEL_FORMATS
    from beadseg.inference.writers import OutputOptions
    from beadseg.packaging.export import EXPORTERS, export
    from beadseg.settings import FREE, SETTINGS, SettingError

    source = (ROOT / "settings.py").read_text()  # "checkpoint" and "tiff" are words of other settings there too
    assert not [name for name in {*EXPORTERS, *LABEL_FORMATS} - {"checkpoint", "tiff"} if f'"{name}"' in source]
    assert "format" in FREE and "label_format" in FREE and "format" not in SETTINGS["export"]
    assert set(EXPORTERS) == {"torchscript", "onnx", "checkpoint", "bioimageio"}
    assert "format='zip': accepts one of torchscript, onnx, checkpoint, bioimageio" in preflight("export", ["format=zip"])
    assert preflight("predict", ["input=x", "label_format=png"]).startswith("label_format='png': accepts one of tiff")
    assert preflight("export", ["format=onnx"]) is None
    with pytest.raises(SettingError, match="^format='zip'"):
        export("no-such.ckpt", "zip", ROOT)  # refused before the checkpoint is looked for
    with pytest.raises(SettingError, match="^label_format="):
        OutputOptions.from_config(compose_config("predict", ["input=x", "label_format=png"]), 1)
