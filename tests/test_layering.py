"""The house: data flows one way. No module imports a higher layer, and none imports another module's private
(_underscore) names. Read from the source with ast, so the check covers function-local imports too."""
import ast
from pathlib import Path

import seehear

SRC = Path(seehear.__file__).parent
# docs/ARCHITECTURE.md draws these layers; a module may import its own layer and the ones below.
LAYERS = [
    {"errors", "atomic", "config", "__init__"},
    {"data"},
    {"features"},
    {"models"},
    {"recipes", "engine"},
    {"evaluation", "speech", "trust"},
    {"tasks"},
    {"deploy", "serve", "scale"},
    {"api", "cli", "demo", "__main__"},
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def _room(module: str) -> str:
    """seehear.data.cache -> data; seehear.api -> api."""
    return module.split(".")[1] if module.count(".") else "__init__"


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        yield name, path


def _imports(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seehear") \
                and node.level == 0:
            yield node.lineno, node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("seehear"):
                    yield node.lineno, a.name, []


def test_every_room_has_a_layer():
    rooms = {_room(name) for name, _ in _modules() if name != "seehear"}
    assert rooms <= set(LEVEL), f"add these to LAYERS and docs/ARCHITECTURE.md: {rooms - set(LEVEL)}"


def test_no_module_imports_a_higher_layer():
    upward = []
    for name, path in _modules():
        if name == "seehear":
            continue  # the package's face: re-exports seehear.api lazily, as `seehear.train`
        here = LEVEL[_room(name)]
        for line, target, names in _imports(path):
            targets = [target] if target != "seehear" else [f"seehear.{n}" for n in names]
            for t in targets:
                if t.count(".") and LEVEL.get(_room(t), 0) > here:
                    upward.append(f"{path.relative_to(SRC)}:{line} imports {t}")
    assert not upward, "\n".join(upward)


def test_no_module_imports_private_names_of_another():
    private = []
    for name, path in _modules():
        for line, target, names in _imports(path):
            for n in names:
                if n.startswith("_") and target != name:
                    private.append(f"{path.relative_to(SRC)}:{line} imports {target}.{n}")
    assert not private, "\n".join(private)
