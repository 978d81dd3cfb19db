"""Read ``template.yaml`` and resolve its intrinsic functions for the embedded stack."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

# libyaml's loader where PyYAML was built with it (its wheels are): the template parses ~8x faster, and
# the embedded stack and the template tests parse it often.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _CfnLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """A YAML loader that understands CloudFormation's short-form tags (``!Ref``, ``!GetAtt``, ``!Sub``…)."""


def _construct_tag(loader: yaml.Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation template, short-form tags included."""
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


class Resolver:
    """Resolves ``Ref``, ``Fn::GetAtt`` and ``Fn::Sub`` against what the embedded stack created."""

    def __init__(self, pseudo: dict[str, str], refs: dict[str, str], attributes: dict[tuple[str, str], str]):
        self.pseudo = pseudo
        self.refs = refs
        self.attributes = attributes

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self._ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            logical, attribute = value["Fn::GetAtt"]
            return self.attributes[(logical, attribute)]
        if set(value) == {"Fn::Sub"}:
            return self._sub(value["Fn::Sub"])
        return {k: self.resolve(v) for k, v in value.items()}

    def _ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        return self.refs[name]

    def _sub(self, template: str | list[Any]) -> str:
        variables: dict[str, Any] = {}
        if isinstance(template, list):
            template, variables = template[0], template[1]

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(self.resolve(variables[name]))
            if "." in name and not name.startswith("AWS::"):
                logical, attribute = name.split(".", 1)
                return self.attributes[(logical, attribute)]
            return self._ref(name)

        return re.sub(r"\$\{([^}!]+)\}", replace, template)
