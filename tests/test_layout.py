"""The package's layout is its pipeline: stage sub-packages whose imports point from later
stages to earlier ones only (lazy imports inside functions count), no import cycle, and no
module over 900 lines of code."""

import ast
import io
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bayesmm"
# The stages in pipeline order; a module may import from its own stage or an earlier one.
# The leaves (warnings, files, version, PyMC imported on first use) come first; api wires the
# stages; the workflows and the command line are built on api.
STAGES = ["version", "warn", "files", "lazy", "data", "spec", "design", "families", "model", "inference",
          "results", "api", "workflows", "datasets", "cli", "__main__"]  # fmt: skip
MAX_CODE_LINES = 900


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every bayesmm module ``path`` imports, at the top or inside a function, outside
    ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("bayesmm"):
                continue
            for alias in node.names:  # "from . import results": a module, not a name
                candidate = f"{target}.{alias.name}"
                found.add(candidate if _exists(candidate) else target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("bayesmm"))
    found.discard(name)
    return found


def _exists(module: str) -> bool:
    relative = Path(*module.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").exists() or (PACKAGE / relative / "__init__.py").exists()


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _stage(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself: it exports names lazily, from every stage
        return len(STAGES)
    return STAGES.index(parts[1])


def test_every_module_belongs_to_a_stage():
    unknown = [m for m in _graph() if m != "bayesmm" and m.split(".")[1] not in STAGES]
    assert not unknown


def test_imports_point_from_later_stages_to_earlier_ones():
    backwards = [
        (module, target)
        for module, targets in _graph().items()
        for target in targets
        if module != "bayesmm" and target != "bayesmm" and _stage(target) > _stage(module)
    ]
    assert not backwards


def test_no_module_imports_the_package_root():
    # The root exports names lazily from every stage: importing it would hide a cycle. Only
    # the command line, the last stage, uses the public names.
    top = {"bayesmm", "bayesmm.cli", "bayesmm.__main__"}
    assert not [m for m, targets in _graph().items() if "bayesmm" in targets and m not in top]


def test_no_import_cycle():
    graph = _graph()
    graph.pop("bayesmm")
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not comments, not docstrings."""
    source = path.read_text()
    docstrings = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}  # fmt: skip
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skip:
            lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_900_code_lines(path):
    assert code_lines(path) <= MAX_CODE_LINES


def test_the_checks_see_a_cycle_and_a_backward_import(tmp_path, monkeypatch):
    """The checks above can fail: a stage importing a later one is found."""
    graph = _graph()
    assert "bayesmm.spec.formula" in graph["bayesmm.design.build"]  # a forward edge is seen
    assert _stage("bayesmm.results.fit") > _stage("bayesmm.inference.nuts")
