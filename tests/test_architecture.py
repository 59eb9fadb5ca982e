"""The shape of the code, kept: no import cycle, no upward import against the README's layers, third-party
frameworks only where they belong, store-only commands without torch, and a README layout that lists every
module (issue 26)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

TLCORE = ROOT / "tlcore"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported(path: Path, known: set[str]) -> set[str]:
    """Every module of `known` the file imports, at the top or inside a function (`from a import b` names a.b when
    b is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in TLCORE.rglob("*.py")}
    return {name: imported(path, set(files)) - {name} for name, path in files.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus modules that import themselves."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def readme_layers() -> dict[str, int]:
    """tlcore's layers as the README states them: 'N. name: module, module, ...', lowest first."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- layers -->(.*?)<!-- /layers -->", text, re.S)
    assert block, "README.md has no <!-- layers --> block"
    layers = {}
    for line in block.group(1).splitlines():
        if m := re.match(r"\s*(\d+)\. [^:]+: (.+)$", line):
            for name in m.group(2).split(","):
                layers[name.strip()] = int(m.group(1))
    return layers


def layer_of(module: str, layers: dict[str, int]) -> int:
    """`tlcore.data.scan` is in the layer of `data`; `tlcore.training.parts.cancel` in that of `parts`."""
    top = module.split(".")[1] if module.count(".") else "__init__"
    return layers[top]


def test_no_import_cycle() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:  # the test above must be able to fail
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def upward_imports(edges: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    return [f"{a} (layer {layer_of(a, layers)}) imports {b} (layer {layer_of(b, layers)})"
            for a, targets in sorted(edges.items()) if a != "tlcore" for b in sorted(targets)
            if b != "tlcore" and layer_of(b, layers) > layer_of(a, layers)]


def test_every_module_is_in_a_layer_and_imports_only_its_own_layer_or_lower() -> None:
    layers = readme_layers()
    edges = graph()
    missing = sorted({m.split(".")[1] for m in edges if m.count(".")} - set(layers))
    assert missing == [], f"modules the README's layers do not name: {missing}"
    assert upward_imports(edges, layers) == []


def test_an_upward_import_would_be_seen() -> None:  # the test above must be able to fail
    layers = readme_layers()
    edges = {**graph(), "tlcore.training.train": graph()["tlcore.training.train"] | {"tlcore.running.worker"}}
    assert upward_imports(edges, layers) == ["tlcore.training.train (layer 6) imports tlcore.running.worker (layer 7)"]
    assert layer_of("tlcore.training.parts.cancel", layers) == layer_of("tlcore.training.train", layers)


@pytest.mark.parametrize("framework, allowed", [
    ("streamlit", set()),  # the UI is pages/ and app.py only
    ("plotly", {"tlcore.experiments.report"}),
    ("ray", {"tlcore.running.on_ray"}),
])
def test_frameworks_stay_in_their_module(framework: str, allowed: set[str]) -> None:
    users = set()
    for path in TLCORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == framework or n.startswith(framework + ".") for n in names):
                users.add(module_name(path))
    assert users == allowed


STORE_ONLY = [["runs", "list"], ["runs", "show", "20260101-000000-abcdef"], ["runs", "cancel", "20260101-000000-abcdef"],
              ["--help"], ["runs", "--help"]]


@pytest.mark.parametrize("argv", STORE_ONLY, ids=" ".join)
def test_store_only_commands_import_no_torch(argv: list[str], tmp_path: Path) -> None:
    probe = ("import sys\nfrom tlcore.cli import main\n"
             f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
             "heavy = sorted(m for m in ('torch', 'timm', 'albumentations', 'cv2', 'pydantic') if m in sys.modules)\n"
             "print('HEAVY', heavy)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={"TRANSFERLAB_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_the_apps_first_page_imports_no_torch(tmp_path: Path) -> None:
    """The Data page opens without loading torch, timm or albumentations (~4 s on 2 cores); pages that show a model
    load them when they need them."""
    probe = ("import sys\nfrom streamlit.testing.v1 import AppTest\n"
             f"app = AppTest.from_file({str(ROOT / 'app.py')!r}, default_timeout=120).run()\n"
             "print('ERRORS', [e.value for e in app.exception])\n"
             "print('TITLE', [t.value for t in app.title])\n"
             "print('HEAVY', sorted(m for m in ('torch', 'timm', 'albumentations', 'transformers') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"TRANSFERLAB_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert "ERRORS []" in result.stdout and "TITLE [" in result.stdout, result.stdout + result.stderr[-3000:]
    assert "TITLE []" not in result.stdout, result.stdout  # the page drew itself
    assert "HEAVY []" in result.stdout, result.stdout


def test_the_readme_layout_names_every_module() -> None:
    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):]
    layout = layout[:layout.index("```", layout.index("```") + 3)]
    named = set(re.findall(r"([A-Za-z_0-9]+)(?:\.py|/)", layout))
    unnamed = sorted(p.stem if p.name != "__init__.py" else p.parent.name for p in TLCORE.glob("*.py")
                     if p.stem not in named and p.name != "__init__.py")
    unnamed += sorted(p.name for p in TLCORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()
                      and p.name not in named)
    assert unnamed == [], f"README Layout omits: {unnamed}"


def _public_definitions(path: Path):
    tree = ast.parse(path.read_text())
    names = next((set(ast.literal_eval(n.value)) for n in tree.body if isinstance(n, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)), set())
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in names]


def test_every_public_name_has_a_docstring() -> None:
    bare = [f"{p.relative_to(ROOT)}: {n.name}" for p in sorted(TLCORE.rglob("*.py")) for n in _public_definitions(p)
            if not ast.get_docstring(n)]
    assert bare == []


TORCH_OVERRIDES = {"forward", "backward"}  # nn.Module and autograd.Function's own, documented there


def _public_methods(path: Path):
    """Public methods of the module's public classes, except those a documented tlcore base class or torch
    defines (a part's hooks are documented once, on `Part`; a modality's methods once, on `Modality`)."""
    tree = ast.parse(path.read_text())
    public = {n.name for n in _public_definitions(path) if isinstance(n, ast.ClassDef)}
    documented_in = {base: {m.name for m in ast.walk(ast.parse((TLCORE / where).read_text()))
                            if isinstance(m, ast.FunctionDef) and ast.get_docstring(m)}
                     for base, where in (("Part", "training/parts/base.py"), ("Modality", "modality/base.py"))}
    for node in tree.body:
        if not (isinstance(node, ast.ClassDef) and node.name in public):
            continue
        inherited = set().union(*(documented_in.get(b.id, set()) for b in node.bases if isinstance(b, ast.Name)))
        for item in node.body:
            if (isinstance(item, ast.FunctionDef) and not item.name.startswith("_")
                    and item.name not in TORCH_OVERRIDES and item.name not in inherited):
                yield node.name, item


def test_public_methods_say_what_they_do_and_their_arguments() -> None:
    bare = []
    for path in sorted(TLCORE.rglob("*.py")):
        for owner, node in _public_methods(path):
            doc = ast.get_docstring(node) or ""
            params = [a.arg for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
            if not doc or (params and "Args:" not in doc and not all(a in doc for a in params)):
                bare.append(f"{path.relative_to(ROOT)}: {owner}.{node.name}")
    assert bare == []


def test_public_functions_document_their_arguments() -> None:
    """Every public function of tlcore says its arguments (by an Args: section or by naming each one)."""
    undocumented = []
    for path in sorted(TLCORE.rglob("*.py")):
        for node in _public_definitions(path):
            if not isinstance(node, ast.FunctionDef):
                continue
            doc = ast.get_docstring(node) or ""
            params = [a.arg for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
            if params and "Args:" not in doc and not all(a in doc for a in params):
                undocumented.append(f"{path.relative_to(ROOT)}: {node.name}")
    assert undocumented == []


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The import graph with each module folded into its sub-package of tlcore (`tlcore.training.parts.cancel` is
    `training`); top-level modules stand for themselves."""
    def package(module: str) -> str:
        return module.split(".")[1] if module.count(".") else module
    folded: dict[str, set[str]] = {}
    for a, targets in edges.items():
        folded.setdefault(package(a), set()).update(package(b) for b in targets if package(b) != package(a))
    return folded


def test_no_import_cycle_between_sub_packages() -> None:
    """Issue 40: the layers hold at the sub-package level, so a package can be read without the ones above it."""
    assert cycles(package_graph(graph())) == []
    assert cycles(package_graph({"tlcore.a.x": {"tlcore.b.y"}, "tlcore.b.y": {"tlcore.a.z"}})) == [["a", "b"]]


def test_the_top_level_is_a_floor_plan_of_sub_packages() -> None:
    """Issue 40: tlcore/ holds sub-packages by concern and a handful of modules; each sub-package says in its
    docstring what belongs there and stays small enough to read (about 2,500 lines)."""
    assert sorted(p.name for p in TLCORE.glob("*.py")) == ["__init__.py", "__main__.py", "config.py", "errors.py"]
    packages = [p for p in TLCORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert len(packages) >= 10
    undocumented = [p.name for p in packages if not ast.get_docstring(ast.parse((p / "__init__.py").read_text()))]
    assert undocumented == []
    sizes = {p.name: sum(len(f.read_text().splitlines()) for f in p.rglob("*.py")) for p in packages}
    assert max(sizes.values()) <= 2600, sizes


def test_the_engine_holds_no_page_state_or_wording() -> None:
    """Issue 40: the app's state (the experiment, with widget words such as "Bundled sample data") is beside the
    pages; no module of tlcore imports the pages or streamlit, or holds their words."""
    importers, worded = [], []
    for path in TLCORE.rglob("*.py"):
        text = path.read_text()
        tree = ast.parse(text)
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "pages" or n.startswith("pages.") or n.startswith("streamlit") for n in names):
                importers.append(module_name(path))
        if "Bundled sample" in text or "session_state" in text:
            worded.append(module_name(path))
    assert importers == [] and worded == []
    assert (ROOT / "pages" / "experiment.py").is_file()
