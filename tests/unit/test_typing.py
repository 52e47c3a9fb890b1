"""`Any` in a public signature only where a value is truly dynamic (issue 27).

A JSON object (``dict[str, Any]``, ``Mapping[str, Any]``) is dynamic by nature and not
counted. Every other ``Any`` in a public function's or method's parameters or return is:
third-party objects (Gradio updates, torch models, Chroma clients) still hold some, so each
module has a budget, the count when this check was written, which may only shrink; a module
not listed has none. Modules with no explicit ``Any`` at all are held to that by mypy
(``disallow_any_explicit`` in pyproject.toml).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "assistant"
JSON = re.compile(r"\b(?:dict|Mapping)\[str, Any\]")
BUDGET = {  # module (under assistant/) -> Any in its public signatures, JSON objects aside
    "backends/llamacpp_accuracy.py": 6, "backends/logprobs.py": 1, "backends/openai.py": 1,
    "models/adapter_folder.py": 4, "models/adapters.py": 1, "models/sampling.py": 1,
    "retrieval/chunks.py": 1, "retrieval/client.py": 2, "retrieval/embeddings.py": 1,
    "retrieval/store.py": 1,
    "server.py": 2, "services.py": 1,
    "training/card.py": 1, "training/data.py": 2, "training/jobs.py": 1, "training/loop.py": 4,
    "training/synth.py": 1,
    "ui/adapters.py": 1, "ui/arena.py": 2, "ui/chat.py": 7,
    "ui/compare.py": 1, "ui/conversations.py": 4, "ui/files.py": 4,
    "ui/from_documents.py": 10, "ui/from_documents_data.py": 2, "ui/knowledge.py": 2,
    "ui/metrics.py": 5, "ui/training.py": 2,
}


def public_any(source: str) -> list[str]:
    """``line name: annotation`` for each non-JSON ``Any`` in a public signature."""
    found: list[str] = []

    def visit(node: ast.AST, public: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, public and not child.name.startswith("_"))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and public and (
                    not child.name.startswith("_") or child.name.endswith("__")):
                a = child.args
                params = [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]
                notes = [p.annotation for p in params if p and p.annotation] + [child.returns]
                found.extend(f"{child.lineno} {child.name}: {ast.unparse(n)}" for n in notes
                             if n and re.search(r"\bAny\b", JSON.sub("", ast.unparse(n))))

    visit(ast.parse(source), True)
    return found


def test_the_count_sees_public_signatures_only_and_lets_json_objects_pass():
    source = ("def f(a: Any, b: dict[str, Any]) -> list[Any]: ...\n"
              "def _private(a: Any) -> Any: ...\n"
              "class C:\n    def m(self, rows: list[Mapping[str, Any]]) -> Any: ...\n"
              "    def __init__(self, x: Any) -> None: ...\n"
              "class _Hidden:\n    def m(self, a: Any) -> None: ...\n")
    assert [site.split(":")[0] for site in public_any(source)] == [
        "1 f", "1 f", "4 m", "5 __init__"]


def test_public_signatures_hold_no_more_any_than_their_budget():
    grown = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        sites = public_any(path.read_text())
        if len(sites) > BUDGET.get(name, 0):
            grown[name] = sites
    assert not grown, (
        "more `Any` in public signatures than budgeted (name the type: an imported class "
        "under TYPE_CHECKING, a Protocol, object; JSON objects are dict[str, Any]):\n"
        + "\n".join(f"{name} (budget {BUDGET.get(name, 0)}): {sites}"
                    for name, sites in grown.items()))
