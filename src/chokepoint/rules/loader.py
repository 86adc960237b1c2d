"""Reading rule files from disk: strict YAML, strict schema, errors that name file and key."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from chokepoint.rules.model import FILE_KINDS, RuleFile
from chokepoint.rules.predicate import PredicateError
from chokepoint.rules.ruleset import RuleSet, RuleSetError

DATA_DIR = Path(__file__).parent / "data"


class RuleLoadError(Exception):
    """A rule file could not be loaded. The message names the file and the key."""

    def __init__(self, path: str, key: str, message: str) -> None:
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")
        self.path, self.key, self.message = path, key, message


_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


class _StrictLoader(_Base):  # type: ignore[misc]
    """A YAML loader that refuses duplicate keys (PyYAML keeps the last one silently)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # (<<: *anchor, merged below)
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}'", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
# Dates stay strings here so that the schema validates them and names the key of a bad one.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def strict_yaml(text: str) -> Any:
    """YAML as data, refusing duplicate keys (yaml.YAMLError naming the line), with dates
    left as text: for rule files and for anything a user writes (transactions, column
    maps, test cases), where a key given twice is ambiguous, not "the last one"."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass


def read_yaml(text: str, path: str) -> Any:
    try:
        return strict_yaml(text)
    except yaml.YAMLError as exc:
        raise RuleLoadError(path, "", f"invalid YAML: {exc}") from exc


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def parse_rule_file(data: Any, path: str) -> RuleFile:
    """Validate one rule file's data against the schema of its ``kind``."""
    if not isinstance(data, dict):
        raise RuleLoadError(path, "", "a rule file must be a YAML mapping")
    kind = data.get("kind")
    if kind not in FILE_KINDS:
        raise RuleLoadError(path, "kind", f"unknown kind {kind!r}; one of {sorted(FILE_KINDS)}")
    try:
        return FILE_KINDS[kind].model_validate(data)  # type: ignore[return-value]
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not in the rule-file schema)"
        if err["type"] == "missing":
            msg = "required key is missing"
        more = f" (and {len(exc.errors()) - 1} more error(s))" if len(exc.errors()) > 1 else ""
        raise RuleLoadError(path, _loc(tuple(err["loc"])), msg + more) from exc
    except PredicateError as exc:
        raise RuleLoadError(path, exc.where, str(exc)) from exc


def content_hash(raw_files: dict[str, bytes]) -> str:
    """The ``rules_version``: a hash over every file's relative path and bytes."""
    digest = hashlib.sha256()
    for rel in sorted(raw_files):
        digest.update(rel.encode() + b"\0" + raw_files[rel] + b"\0")
    return "sha256:" + digest.hexdigest()[:20]


def rules_from_bytes(raw_files: dict[str, bytes], where: str = "rules") -> RuleSet:
    """Parse and cross-check rule files given as ``{relative path: bytes}``."""
    if not raw_files:
        raise RuleLoadError(where, "", "no rule files found")
    files: dict[str, RuleFile] = {
        rel: parse_rule_file(read_yaml(raw.decode("utf-8"), rel), rel)
        for rel, raw in sorted(raw_files.items())}
    try:
        return RuleSet(files=files, content_hash=content_hash(raw_files))
    except RuleSetError as exc:
        raise RuleLoadError(where, "", str(exc)) from exc


def read_rule_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.yaml")}


def load_rules(root: Path | None = None) -> RuleSet:
    """Load and cross-check every ``*.yaml`` rule file under ``root``."""
    root = root or DATA_DIR
    return rules_from_bytes(read_rule_tree(root), str(root))


_DEFAULT: RuleSet | None = None


def default_rules() -> RuleSet:
    """The bundled rule tree, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_rules()
    return _DEFAULT
