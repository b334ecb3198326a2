"""The attribute schema: a set of categorical attributes shared by photos and sketches."""

from __future__ import annotations

from dataclasses import dataclass

from core.common.errors import UnknownAttributeError


@dataclass(frozen=True)
class AttributeSpec:
    name: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class AttributeSchema:
    attributes: tuple[AttributeSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    def spec(self, name: str) -> AttributeSpec:
        for attribute in self.attributes:
            if attribute.name == name:
                return attribute
        known = ", ".join(self.names) or "none"
        raise UnknownAttributeError(f"unknown attribute '{name}' (known: {known})")

    def check(self, name: str, value: str) -> None:
        """Raise :class:`UnknownAttributeError` unless ``value`` is one of ``name``'s values."""
        spec = self.spec(name)
        if value not in spec.values:
            raise UnknownAttributeError(
                f"unknown value '{value}' for attribute '{name}' (values: {', '.join(spec.values)})"
            )

    def to_json(self) -> list[dict]:
        return [{"name": a.name, "values": list(a.values)} for a in self.attributes]

    @classmethod
    def from_json(cls, data: list[dict]) -> AttributeSchema:
        return cls(tuple(AttributeSpec(d["name"], tuple(d["values"])) for d in data))


_COLOURS = ("black", "white", "red", "purple", "yellow", "gray", "blue", "green", "pink", "brown", "orange")

# The PKU-Sketch labels (after the Market-1501 attribute set), the schema the default model predicts.
PERSON_ATTRIBUTES = AttributeSchema(
    (
        AttributeSpec("gender", ("male", "female")),
        AttributeSpec("age", ("child", "teen", "adult", "senior")),
        AttributeSpec("hair", ("short", "long")),
        AttributeSpec("sleeve", ("short", "long")),
        AttributeSpec("lower_length", ("short", "long")),
        AttributeSpec("lower_type", ("trousers", "shorts", "skirt", "dress")),
        AttributeSpec("hat", ("yes", "no")),
        AttributeSpec("backpack", ("yes", "no")),
        AttributeSpec("bag", ("yes", "no")),
        AttributeSpec("upper_color", _COLOURS),
        AttributeSpec("lower_color", _COLOURS),
    )
)
