"""``Record``: the base of the small immutable classes of the modules a service imports at
start (``errors``, the runtime kernel's results and snapshots).

They are plain slotted classes rather than frozen dataclasses: ``dataclasses`` (with the
``inspect`` it imports) is a third of the runtime kernel's import time, which every
service pays before it has a config to load (docs/performance.md, "Runtime kernel").
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Self


class Record:
    """A record of the fields its class names in ``__slots__`` (a tuple constant, in
    its constructor's order: ruff sorts a literal ``__slots__``): immutable, equal and
    hashed by its fields (a subclass may take identity instead), shown by those not
    named ``_...``, and pickled and copied through its constructor."""

    __slots__: tuple[str, ...] = ()

    def _set_fields(self, values: Iterable[Any]) -> None:
        """Give each field its value, in ``__slots__``' order (from ``__init__`` only)."""
        for name, value in zip(self.__slots__, values, strict=True):
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(
            f"cannot assign to field {name!r}: a {type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(
            f"cannot delete field {name!r}: a {type(self).__name__} is immutable")

    def __reduce__(self) -> tuple[type[Self], tuple[Any, ...]]:
        # pickle and copy: the constructor, as __setattr__ refuses the default's setattr.
        return type(self), self._fields()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__
                          if not name.startswith("_"))
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())
