"""The YAML tables preflight ships (engine flags, compatibility, model shapes, checks)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from bugatlas.files import load_yaml


@cache
def load(name: str) -> dict[str, Any]:
    """One of the package's data files (``engines``, ``compat``, ``models``, ``attention``, ``checks``)."""
    text = (resources.files("bugatlas.preflight") / "data" / f"{name}.yaml").read_text("utf-8")
    return load_yaml(text)


GIB = 1024**3
MIB = 1024**2


def gib(n_bytes: float) -> str:
    """Bytes as GiB with two decimals (the unit the engines' logs use); MiB/KiB below 1 GiB/MiB
    so small models do not print as 0.00 GiB."""
    if abs(n_bytes) >= GIB or n_bytes == 0:
        return f"{n_bytes / GIB:.2f} GiB"
    if abs(n_bytes) >= MIB:
        return f"{n_bytes / MIB:.2f} MiB"
    return f"{n_bytes / 1024:.2f} KiB"
