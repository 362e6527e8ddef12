"""The packages import one way, lowest layer first (docs/architecture.md). Lazy imports inside functions
count too: a module may import only from its own layer or lower ones."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tinyagent_ft", "eval", "retriever", "serve")
LAYERS = [  # lowest first; a module belongs to the layer of its longest listed prefix
    ("syntax and utilities", ["tinyagent_ft", "tinyagent_ft.catalog", "tinyagent_ft.catalog_files", "eval.plan", "tinyagent_ft.jsonio",
                              "tinyagent_ft.console", "tinyagent_ft.monitor", "tinyagent_ft.devices",
                              "tinyagent_ft.models", "tinyagent_ft.tracking", "tinyagent_ft.memory",
                              "tinyagent_ft.checkpoints", "tinyagent_ft.packing", "tinyagent_ft.optim",
                              "tinyagent_ft.synth.intents", "tinyagent_ft.synth.pools"]),
    ("data, prompts, grammar and scoring", ["tinyagent_ft.data", "tinyagent_ft.prompt", "tinyagent_ft.samples",
                                            "tinyagent_ft.grammar", "tinyagent_ft.constrain", "tinyagent_ft.config",
                                            "tinyagent_ft.kernels", "tinyagent_ft.synth", "tinyagent_ft.stats",
                                            "eval"]),
    ("retrieval", ["retriever"]),
    ("planner", ["tinyagent_ft.planner", "tinyagent_ft.planner_folder", "tinyagent_ft.prefill", "tinyagent_ft.decode"]),
    ("training and evaluation runs", ["tinyagent_ft.train", "tinyagent_ft.steps", "tinyagent_ft.demo"]),
    ("server and CLI", ["serve", "tinyagent_ft.cli", "tinyagent_ft.__main__"]),
]


def layer_of(module: str) -> int:
    best = max(((len(prefix), i) for i, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
                if module == prefix or module.startswith(prefix + ".")), default=None)
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS and docs/architecture.md"
    return best[1]


def project_imports(path: Path, module: str) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]) if node.level else ""
            found.add(".".join(p for p in (base, node.module) if p))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_imports_go_one_way():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for path, module in modules() for target in sorted(project_imports(path, module))
              if layer_of(target) > layer_of(module)]
    assert not upward, "\n".join(upward)


def test_an_upward_import_is_caught(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from .planner import Planner\n")
    assert project_imports(probe, "tinyagent_ft.prompt") == {"tinyagent_ft.planner"}
    assert layer_of("tinyagent_ft.planner") > layer_of("tinyagent_ft.prompt")
