"""Attribute values in words: what a grid caption, a tooltip and the comparison view show. A model's
prediction always reads as one (``~value 73%``), a stated value says who stated it and when."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from core.common.types import AttributeSource, AttributeValue

# What an investigator scans a grid for first; other attributes fill the caption when these are unknown.
CAPTION_ATTRIBUTES = ("gender", "upper_color", "lower_color", "hat", "backpack", "bag")
CAPTION_LENGTH = 3
_GARMENT = {"upper": "top", "lower": "bottom"}


def value_label(name: str, value: str) -> str:
    """A value that reads without its attribute's name beside it: ``backpack`` / ``no backpack`` for
    yes/no attributes, ``white top`` for ``upper_color=white``, the value itself otherwise."""
    if value in ("yes", "no"):
        label = name.replace("_", " ")
        return label if value == "yes" else f"no {label}"
    if name.endswith("_color"):
        part = name.removesuffix("_color")
        return f"{value} {_GARMENT.get(part, part)}"
    return value


def format_attribute(value: AttributeValue, rich: bool = False, name: str | None = None) -> str:
    """Manual and imported values as they are (bold in rich text); model predictions as
    ``~value 73%`` (italic in rich text). With ``name``, the value reads on its own (``no hat``)."""
    shown = value_label(name, value.value) if name else value.value
    if value.source == AttributeSource.MODEL:
        text = f"~{shown} {value.confidence:.0%}"
        return f"<i>{escape(text)}</i>" if rich else text
    return f"<b>{escape(shown)}</b>" if rich else shown


def caption(attributes: dict[str, AttributeValue]) -> str:
    """The few attributes shown under a thumbnail, each readable on its own."""
    names = [n for n in CAPTION_ATTRIBUTES if n in attributes]
    names += [n for n in sorted(attributes) if n not in names]
    return " ".join(format_attribute(attributes[n], name=n) for n in names[:CAPTION_LENGTH])


def attributes_html(attributes: dict[str, AttributeValue], origin: bool = False) -> str:
    """Every attribute on its own line; with ``origin``, where each value comes from."""
    if not attributes:
        return "<i>no attributes</i>"
    return "<br>".join(
        f"{escape(name)}: {format_attribute(a, rich=True)}"
        + (f" <small>({escape(describe_origin(a))})</small>" if origin else "")
        for name, a in sorted(attributes.items())
    )


def local_time(moment: datetime) -> str:
    """The catalogue keeps UTC (naive); show local time with its zone."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def describe_origin(value: AttributeValue) -> str:
    """Where a value comes from, in words: ``set by hand by alice, 2026-11-30 07:02:11 CET``."""
    if value.source == AttributeSource.MODEL:
        return f"predicted by the model, {value.confidence:.0%} confident"
    what = "set by hand" if value.source == AttributeSource.MANUAL else "imported"
    who = f" by {value.set_by}" if value.set_by else ""
    when = f", {local_time(value.set_at)}" if value.set_at else ""
    if not who and not when:
        return f"{what} (who and when were not recorded)"
    return f"{what}{who}{when}"
