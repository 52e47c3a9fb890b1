"""The package's shape: no import cycles, and no lower layer importing a higher one.

Every import counts: those inside functions (they still make a module depend on another)
and those under ``if TYPE_CHECKING:`` (a two-way import for types is still two modules that
each need the other to be read).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "assistant"

# Lowest first, one folder per layer: a module imports its own folder and the layers
# below it, never above, so every import between folders points down. Folders that share a
# layer are siblings and import neither each other (what both need lives lower); the shared
# lowest modules, and the entry points (cli.py and the commands it loads), are one unit.
LAYERS = [
    ("assistant.errors", "assistant.text", "assistant.jsonl", "assistant.settings"),
    ("assistant.models",),
    ("assistant.retrieval",),
    ("assistant.ledger",),
    ("assistant.backends",),
    ("assistant.answering",),
    ("assistant.training",),
    ("assistant.services",),  # the composition root: builds and wires the components
    ("assistant.evaluation",),  # drives the services over a question set
    ("assistant.access",),  # who may do what: the web app's and the API's rules
    ("assistant.api", "assistant.ui"),  # siblings: the OpenAI-compatible API, the web app
    ("assistant.server",),  # serves both on one port
    ("assistant.commands", "assistant.cli", "assistant.__init__"),
]
UNITS = {0, len(LAYERS) - 1}  # layers whose members may import each other


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package modules ``path`` imports at run time (anywhere in the file)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name in known:
                found.add(name)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(files)
    edges = {name: imports_of(path, known) - {name} for name, path in files.items()}
    # "from assistant.x import y" also names the package assistant.x; a package's __init__
    # holds only its docstring here, so an edge to a package is no dependency.
    packages = {n for n, p in files.items() if p.name == "__init__.py"}
    return {name: deps - packages for name, deps in edges.items()}


def position(name: str) -> tuple[int, str]:
    """The layer of module ``name`` and the folder (or top module) it belongs to."""
    name = "assistant.__init__" if name == "assistant" else name
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                return rank, prefix
    raise AssertionError(f"{name} is in no layer: add it to LAYERS")


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Each import that points up, or sideways to a sibling folder."""
    wrong = []
    for a, deps in edges.items():
        rank_a, folder_a = position(a)
        for b in sorted(deps):
            rank_b, folder_b = position(b)
            sibling = rank_b == rank_a and folder_b != folder_a and rank_a not in UNITS
            if rank_b > rank_a or sibling:
                wrong.append(f"{a} imports {b}")
    return wrong


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := walk(start)):
            return cycle
    return None


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_every_import_between_folders_points_down():
    wrong = upward(graph())
    assert not wrong, "\n".join(sorted(wrong))


@pytest.mark.parametrize("edges, expected", [
    ({"assistant.answering.pipeline": {"assistant.models.generation"}}, []),
    ({"assistant.models.batching": {"assistant.answering.modes"}},
     ["assistant.models.batching imports assistant.answering.modes"]),
    ({"assistant.api.app": {"assistant.ui.common"}},
     ["assistant.api.app imports assistant.ui.common"]),
    ({"assistant.jsonl": {"assistant.errors"}, "assistant.commands.ask": {"assistant.cli"}}, []),
])
def test_the_order_check_finds_upward_and_sibling_imports(edges, expected):
    assert upward(edges) == expected


def test_every_package_folder_says_what_it_is_for():
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 20, f"{init.relative_to(ROOT)} needs a docstring"


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
])
def test_the_cycle_finder_finds_cycles(edges, expected):
    assert find_cycle(edges) == expected
