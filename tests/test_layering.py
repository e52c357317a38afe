"""Layering: a module knows the layers below it, nothing above. Model code (src/rewardkit/models/) never
imports the training recipes, the commands or the CLI helpers, not even lazily inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import rewardkit

SRC = Path(rewardkit.__file__).parent
MODELS = SRC / "models"
FORBIDDEN = ("rewardkit.training", "rewardkit.commands", "rewardkit.cli_utils")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the file, at any depth (relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from rewardkit import training` imports the package rewardkit.training
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            found.append((node.lineno, base))
    return found


def forbidden_imports(root: Path) -> list[str]:
    """`<file>:<line> imports <module>` for every import of a forbidden layer under `root`."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        for line, module in _imported_modules(path):
            if any(module == layer or module.startswith(layer + ".") for layer in FORBIDDEN):
                problems.append(f"{path.relative_to(SRC.parent)}:{line} imports {module}")
    return sorted(set(problems))


def test_models_never_import_training_commands_or_the_cli():
    problems = forbidden_imports(MODELS)
    assert not problems, "model code imports a layer above it:\n" + "\n".join(problems)


def test_the_check_finds_lazy_and_relative_imports(tmp_path):
    # The walker itself: a lazy import inside a function and a relative one are both reported.
    package = tmp_path / "rewardkit" / "models" / "toy"
    package.mkdir(parents=True)
    (tmp_path / "rewardkit" / "__init__.py").write_text("")
    (tmp_path / "rewardkit" / "models" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "modeling_toy.py").write_text(
        "import torch\n\ndef fit():\n    from rewardkit.training import Trainer\n    return Trainer\n"
    )
    (package / "other.py").write_text("from ...cli_utils import announce\nfrom rewardkit import commands\n")
    global SRC
    saved, SRC = SRC, tmp_path / "rewardkit"
    try:
        problems = forbidden_imports(tmp_path / "rewardkit" / "models")
    finally:
        SRC = saved
    assert "rewardkit/models/toy/modeling_toy.py:4 imports rewardkit.training" in problems
    assert "rewardkit/models/toy/other.py:1 imports rewardkit.cli_utils" in problems
    assert "rewardkit/models/toy/other.py:2 imports rewardkit.commands" in problems
