"""The engine is pure logic: no I/O, no parsing, no CLI, and no regulation in its code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "src" / "chokepoint" / "engine"
FORBIDDEN_IMPORTS = {"yaml", "json", "os", "io", "pathlib", "shutil", "subprocess", "socket",
                     "typer", "rich", "chokepoint.cli", "chokepoint.rules.loader",
                     "chokepoint.contract", "chokepoint.testcases"}
FORBIDDEN_CALLS = {"open", "print", "input"}

# Regulation-specific literals: ECCNs, ISO dates, country codes, FR citations, CFR sections.
ECCN = re.compile(r"\b\d[A-E]\d{3}\b")
ISO_DATE = re.compile(r"\b(19|20)\d\d-\d\d-\d\d\b")
COUNTRY = re.compile(r"^[A-Z]{2}$")
CITATION = re.compile(r"\b\d+ FR \d+|\b7\d\d\.\d+")


def _modules() -> list[Path]:
    return sorted(ENGINE.glob("*.py"))


def test_engine_imports_no_io_parsing_or_adapter_modules() -> None:
    for path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IMPORTS), (
                    f"{path.name} imports {name}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}()"


def test_no_regulation_specific_literal_in_engine_code() -> None:
    for path in _modules():
        tree = ast.parse(path.read_text())
        # Docstrings and other bare string statements are prose, not code.
        prose = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if id(node) in prose:
                    continue
                text = node.value
                assert not ECCN.search(text), f"{path.name}: ECCN literal {text!r}"
                assert not ISO_DATE.search(text), f"{path.name}: date literal {text!r}"
                assert not COUNTRY.match(text), f"{path.name}: country literal {text!r}"
                assert not CITATION.search(text), f"{path.name}: citation literal {text!r}"
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                raise AssertionError(f"{path.name}: numeric threshold {node.value!r} in code")
