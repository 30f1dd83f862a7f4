""":class:`Unknown`: a figure that cannot be known, and why. In a module of its own, with no
imports from the package, so that every layer (the models, the core's pricing, the costs) can
share this one type without an import cycle."""

from __future__ import annotations

import msgspec

__all__ = ["Unknown"]


class Unknown(msgspec.Struct, frozen=True, gc=False):
    """A figure that cannot be known; ``reason`` says why (``"no created_at"``, …)."""

    reason: str

    def __str__(self) -> str:
        return f"unknown ({self.reason})"
