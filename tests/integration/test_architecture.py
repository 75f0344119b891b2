"""The shape ARCHITECTURE.md promises, read from the code: layers that import only downwards, no
import circle between files, no host calls outside the adapters, and no non-test source file
over the size limit. No Envoy needed: this reads `src/` as text."""

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC = REPO_ROOT / "src"

# Bottom first, as ARCHITECTURE.md's code map lists them. Same number: same layer.
LAYERS = {
    "reason": 0, "request": 0, "token": 1, "trace": 2, "authn": 3, "authz": 4,
    "identity": 5, "config": 6, "decision": 7, "adapters": 8,
}
MAX_LINES = 600


def is_test_file(path: Path) -> bool:
    rel = path.relative_to(SRC)
    return rel.parts[0] == "testing" or path.name == "tests.rs" or path.stem.endswith("_tests")


def library_files() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.rs")
                  if p.relative_to(SRC).parts[0] != "bin" and p.name != "lib.rs" and not is_test_file(p))


def product_code(path: Path) -> str:
    """The file without its inline test module (kept last, by convention) and comments."""
    text = path.read_text()
    cut = re.search(r"^#\[cfg\(test\)\]\nmod tests \{", text, re.M)
    text = text[: cut.start()] if cut else text
    return re.sub(r"//[^\n]*", "", text)


def module_of(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(SRC).with_suffix("").parts
    return parts[:-1] if parts[-1] == "mod" else parts


CLI = SRC / "bin" / "jwt-guard"


def file_of(module: tuple[str, ...], root: Path = SRC) -> Path | None:
    """The file that defines `crate::<module>` or the longest prefix of it that is a file."""
    for n in range(len(module), 0, -1):
        for candidate in (root.joinpath(*module[:n]).with_suffix(".rs"), root.joinpath(*module[:n], "mod.rs")):
            if candidate.exists():
                return candidate
    return None


def imports(path: Path, root: Path = SRC) -> set[Path]:
    """Files of the crate that `path` names through `crate::` paths (in `use` or inline), and the
    modules it names in `use crate::{a, b}` lists."""
    code = product_code(path)
    names = [m.group(1) for m in re.finditer(r"crate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)", code)]
    for group in re.findall(r"crate::\{([^}]*)\}", code):
        names += [item.strip() for item in group.split(",") if re.fullmatch(r"[a-z_][a-z0-9_]*", item.strip())]
    found = set()
    for name in names:
        target = file_of(tuple(name.split("::")), root)
        if target is not None and target != path:
            found.add(target)
    return found


def layer(path: Path) -> int:
    return LAYERS[module_of(path)[0]]


def test_every_library_folder_has_a_layer():
    folders = {module_of(p)[0] for p in library_files()}
    assert folders <= set(LAYERS), f"not in ARCHITECTURE.md's layers: {sorted(folders - set(LAYERS))}"
    assert len(library_files()) > 40, "the source tree was not found"


def test_no_module_imports_one_above_it():
    upward = [f"{p.relative_to(REPO_ROOT)} -> {t.relative_to(REPO_ROOT)}"
              for p in library_files() for t in imports(p)
              if not is_test_file(t) and layer(t) > layer(p)]
    assert not upward, "imports that run back up:\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize("crate", ["lib", "cli"])
def test_no_import_circle_between_files(crate):
    if crate == "lib":
        graph = {p: {t for t in imports(p) if not is_test_file(t)} for p in library_files()}
    else:
        graph = {p: imports(p, CLI) for p in sorted(CLI.rglob("*.rs"))}
        assert len(graph) > 10, "the command-line tool's sources were not found"
        into_main = [str(p.relative_to(REPO_ROOT)) for p, targets in graph.items() if CLI / "main.rs" in targets]
        assert not into_main, f"main.rs is the top of the tool; these import it: {into_main}"
    state: dict[Path, int] = {}
    circles = []

    def visit(node: Path, stack: list[Path]):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                circle = stack[stack.index(nxt):] + [nxt]
                circles.append(" -> ".join(str(c.relative_to(REPO_ROOT)) for c in circle))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_only_the_adapters_call_a_host():
    callers = [str(p.relative_to(REPO_ROOT)) for p in library_files()
               if module_of(p)[0] != "adapters" and re.search(r"\bproxy_wasm::", product_code(p))]
    assert not callers, f"proxy-wasm outside src/adapters/: {callers}"


@pytest.mark.parametrize("folder", ["lib", "bin"])
def test_no_source_file_over_the_limit(folder):
    files = library_files() if folder == "lib" else sorted((SRC / "bin").rglob("*.rs"))
    long = [f"{p.relative_to(REPO_ROOT)}: {n} lines" for p in files
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, f"over {MAX_LINES} lines (move its tests beside it, or split it):\n" + "\n".join(long)


def test_the_limits_are_the_ones_architecture_md_states():
    text = (REPO_ROOT / "ARCHITECTURE.md").read_text()
    assert f"over about {MAX_LINES} lines" in text
    order = [name for name in re.findall(r"^\*\*`src/([a-z_]+)", text, re.M) if name in LAYERS]
    assert order == sorted(order, key=LAYERS.__getitem__), f"ARCHITECTURE.md lists the layers as {order}"
    missing = [name for name in LAYERS if f"`src/{name}" not in text]
    assert not missing, f"ARCHITECTURE.md's code map does not describe {missing}"
