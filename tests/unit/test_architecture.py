"""The layers of docs/design.md hold: imports point down, and there is no import cycle.

Every module under ``src/gcauth`` is parsed (not imported) and every import statement is
counted, including those inside functions: a function-level import hides a cycle from the
interpreter, not from the design. The layer rule also counts ``if TYPE_CHECKING:`` imports;
the cycle rule leaves them out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "gcauth"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import statements inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                inside.update(id(n) for n in ast.walk(child))
    return inside


def _imports(name: str, path: Path, known: set[str], *, runtime_only: bool = False) -> set[str]:
    """The gcauth modules ``name`` names in any import statement (``runtime_only``: leave out
    those under ``if TYPE_CHECKING:``, which never run)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    skip = _type_checking_nodes(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from pkg import mod`` names the module pkg.mod; ``from mod import name`` names mod
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
        else:
            continue
        for target in targets:
            # the deepest known module the name refers to (``from .x import y``: x, or x.y
            # when y is itself a module)
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph(*, runtime_only: bool = False) -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known, runtime_only=runtime_only)
            for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return result


# package __init__ modules that only re-export: ``gcauth`` itself imports its public modules
_REEXPORTERS = {PACKAGE}


def _graph_without_reexports() -> dict[str, set[str]]:
    # a cycle is imports that run: function-level ones count, ``if TYPE_CHECKING:`` ones
    # (annotations only) do not; the layer test below counts those too
    graph = _graph(runtime_only=True)
    for name in _REEXPORTERS:
        graph[name] = set()
    return graph


def test_the_graph_sees_function_level_and_type_checking_imports() -> None:
    graph = _graph()
    # transport/__init__ re-exports resolve_request from the layer below, at module level;
    # credentials imports the Request protocol under TYPE_CHECKING only
    assert "gcauth._sender" in graph["gcauth.transport"]
    assert "gcauth._http" in graph["gcauth.credentials"]
    # function-level import: the sender imports urllib3's Request lazily
    assert "gcauth._urllib3" in graph["gcauth._sender"]


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_gcauth() -> None:
    cycles = _cycles(_graph_without_reexports())
    assert cycles == [], "import cycles (every import counted, function-level included): " + \
        "; ".join(" <-> ".join(c) for c in cycles)


#: docs/design.md's layers, top first: a module may import its own layer and those below it.
LAYERS: list[tuple[str, ...]] = [
    ("gcauth.cli", "gcauth.emulator", "gcauth.compat"),
    ("gcauth.transport",),
    ("gcauth._default", "gcauth.flow", "gcauth._loopback", "gcauth.oauth2", "gcauth.id_token"),
    ("gcauth.credentials", "gcauth.service_account", "gcauth.authorized_user",
     "gcauth.compute_engine", "gcauth.impersonated_credentials", "gcauth.iam",
     "gcauth.external_account", "gcauth.identity_pool", "gcauth.aws", "gcauth.pluggable",
     "gcauth.external_account_authorized_user"),
    ("gcauth.tokens",),
    ("gcauth._protocol", "gcauth._protocol.sigv4"),
    ("gcauth._sender", "gcauth._urllib3", "gcauth._http", "gcauth._retry", "gcauth._files",
     "gcauth._checks", "gcauth._executable",
     "gcauth._endpoints", "gcauth._json", "gcauth._value", "gcauth._info",
     "gcauth._executable",
     "gcauth.exceptions"),
]


def _layer(module: str) -> int | None:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(m for m in _graph() if m != PACKAGE and _layer(m) is None)
    assert unplaced == [], f"add these to LAYERS (and docs/design.md): {unplaced}"


def test_imports_point_down() -> None:
    upward = []
    for module, targets in _graph().items():
        rank = _layer(module)
        if rank is None:
            continue
        for target in sorted(targets):
            target_rank = _layer(target)
            if target_rank is not None and target_rank < rank:
                upward.append(f"{module} -> {target}")
    assert upward == [], "imports that point up a layer: " + ", ".join(upward)


def test_protocol_modules_are_pure() -> None:
    """``gcauth._protocol`` says what to send and how to read the reply; it reads no
    environment and no files, and knows nothing of credentials, caches or transports."""
    graph = _graph()
    allowed = {"gcauth._http", "gcauth._json", "gcauth._retry", "gcauth._value", "gcauth._checks",
               "gcauth.exceptions", "gcauth._endpoints"}
    for module, targets in graph.items():
        if not module.startswith("gcauth._protocol"):
            continue
        bad = {t for t in targets if not t.startswith("gcauth._protocol")} - allowed
        assert not bad, f"{module} imports {sorted(bad)}"
    for path in (SRC / PACKAGE / "_protocol").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "os.environ" not in text and "/sys/" not in text, path.name


#: Top-level names of Google's own libraries (and what they bring): only gcauth.compat
#: imports them; the core must work without any installed.
_GOOGLE_LIBRARIES = ("google", "googleapiclient", "google_auth_httplib2", "grpc", "oauth2client")


def _foreign_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] in _GOOGLE_LIBRARIES}


def test_only_gcauth_compat_imports_googles_libraries() -> None:
    offenders = {name: sorted(imports) for name, path in _modules().items()
                 if not (name == "gcauth.compat" or name.startswith("gcauth.compat."))
                 and (imports := _foreign_imports(path))}
    assert offenders == {}, f"google-auth & co. imported outside gcauth.compat: {offenders}"
    # the check sees what it must: the adapter does import google-auth
    assert "google.auth.credentials" in _foreign_imports(
        SRC / PACKAGE / "compat" / "google_auth.py")
