"""The package's layers: no two packages import each other, and inference never imports training."""

import ast
from pathlib import Path

import beadseg

ROOT = Path(beadseg.__file__).parent


def imported_packages(path: Path) -> set[str]:
    """beadseg's top-level packages and modules that one file imports (``from beadseg import plots`` included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" if node.module == "beadseg" else node.module for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("beadseg.")}
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        package = path.relative_to(ROOT).parts[0].removesuffix(".py")
        graph.setdefault(package, set()).update(imported_packages(path) - {package})
    return graph


def test_no_two_packages_import_each_other():
    graph = import_graph()
    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if a in graph.get(b, set())})
    assert cycles == []
    assert {"data", "checkpoint", "inference", "plots"} <= set(graph)  # the scan sees the packages


def test_inference_and_evaluation_load_checkpoints_without_training():
    graph = import_graph()
    assert "training" not in graph["inference"] and "training" not in graph["evaluation"]
    assert "checkpoint" in graph["inference"]
    for low in ("data", "metrics", "plots", "tables"):
        assert not graph.get(low, set()) & {"training", "inference", "evaluation", "analysis", "report", "cli"}, low
