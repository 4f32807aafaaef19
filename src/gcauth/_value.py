"""The base of gcauth's small immutable value objects.

Slots, equality and hashing by field, a ``repr`` that leaves out the fields named in
``_hidden`` (tokens, bodies), no attribute assignment after ``__init__``, and ``pickle`` /
``copy`` support by field (they would otherwise assign the slots one by one). Written by hand
rather than with ``dataclasses`` because importing that module (it pulls in ``inspect``) and
generating the classes cost more than the rest of gcauth's import together.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = ["Value"]


class Value:
    __slots__: tuple[str, ...] = ()
    _hidden: ClassVar[frozenset[str]] = frozenset()

    def _init(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; make a new one")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), tuple(self.__slots__), self._fields()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__
                          if name not in self._hidden)
        return f"{type(self).__name__}({shown})"


def _rebuild(cls: type[Value], names: tuple[str, ...], values: tuple[Any, ...]) -> Value:
    """Unpickle (or copy) a value: the fields it was saved with, set as ``__init__`` does."""
    value = cls.__new__(cls)
    value._init(**dict(zip(names, values, strict=True)))
    return value
