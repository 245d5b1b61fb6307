"""Frozen value classes as :mod:`dataclasses` makes them, without importing it on the way.

The library's small result and settings types (:class:`~PyMySQLLock.server.ServerInfo`,
:class:`~PyMySQLLock.LossReason`, :class:`~PyMySQLLock.LockInfo`, ...) are frozen dataclasses
in behaviour. Importing :mod:`dataclasses` imports :mod:`inspect` (and with it ``ast``, ``dis``
and ``tokenize``), and each class it makes compiles several methods: together a noticeable
share of a ``pymysqllock run`` that cron starts again and again, which needs these classes but
none of that machinery. :func:`value` makes the same class with one small compiled
``__init__`` and shared methods; the rest of the dataclass API is built on first use.

What a class made by :func:`value` has, as with ``@dataclass(frozen=True)``: its fields are
its annotations in order (``ClassVar`` ones excepted), with class-level defaults or a
:func:`value_field`; an ``__init__`` taking them by position or keyword; ``__repr__`` (unless
the class has its own), ``__eq__`` and ``__hash__`` over the compared fields; ``__match_args__``;
assigning or deleting an attribute raises :class:`dataclasses.FrozenInstanceError`; and
:func:`dataclasses.fields`, :func:`~dataclasses.replace`, :func:`~dataclasses.asdict` and
:func:`~dataclasses.is_dataclass` work on it (``__dataclass_fields__`` is built when first
asked for). Type checkers see a frozen dataclass (``dataclass_transform``).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, ClassVar, NoReturn, TypeVar

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_options: Any) -> Callable[[Any], Any]:
        return lambda decorated: decorated


__all__ = ["value", "value_field"]

_T = TypeVar("_T")
_Class = TypeVar("_Class", bound=type)
_NO_DEFAULT = object()


class _Factory:
    """The default ``__init__`` shows for a field made by a factory, as dataclasses shows it."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


class _Field:
    """The marker :func:`value_field` leaves in the class body until :func:`value` reads it."""

    __slots__ = ("compare", "default_factory")

    def __init__(self, default_factory: Callable[[], Any], compare: bool) -> None:
        self.default_factory = default_factory
        self.compare = compare


def value_field(*, default_factory: Callable[[], _T], compare: bool = True) -> _T:
    """A field whose default is made for each instance, as ``dataclasses.field`` does.

    :param default_factory: makes the default.
    :param compare: whether ``==`` and ``hash()`` look at the field.
    """
    return _Field(default_factory, compare)  # type: ignore[return-value]


def _is_class_var(annotation: object) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is ClassVar or getattr(annotation, "__origin__", None) is ClassVar


def _frozen(self: object, name: str, *_value: object) -> NoReturn:
    # Imported only here: changing a value is a bug, and rare.
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot assign to field {name!r}")


class _DataclassFields:
    """``__dataclass_fields__`` on first access: what :mod:`dataclasses`' functions read.

    Made by applying the real ``dataclass`` to a stand-in with the same fields, so that every
    function of :mod:`dataclasses` finds what it expects; then stored on the class.
    """

    def __get__(self, instance: object, owner: type) -> dict[str, Any]:
        import dataclasses

        spec: dict[str, Any] = owner.__dict__["_value_spec"]
        body: dict[str, Any] = {"__annotations__": spec["annotations"]}
        for name, default in spec["defaults"].items():
            body[name] = default
        for name, made in spec["factories"].items():
            body[name] = dataclasses.field(default_factory=made)
        for name in spec["uncompared"]:
            default = body.get(name, dataclasses.MISSING)
            if not isinstance(default, dataclasses.Field):
                default = dataclasses.field(default=default)
            default.compare = False
            body[name] = default
        stand_in: Any = dataclasses.dataclass(frozen=True)(type(owner.__name__, (), body))
        fields: dict[str, Any] = stand_in.__dataclass_fields__
        type.__setattr__(owner, "__dataclass_fields__", fields)
        type.__setattr__(owner, "__dataclass_params__", stand_in.__dataclass_params__)
        return fields


def _init(cls: type, names: list[str], spec: dict[str, Any]) -> Callable[..., None]:
    """Compile ``cls.__init__``: one parameter per field, each stored with ``object``'s setter."""
    arguments: dict[str, Any] = {"_set": object.__setattr__, "_FACTORY": _FACTORY}
    parameters, lines = [], []
    for index, name in enumerate(names):
        if name in spec["factories"]:
            arguments[f"_factory{index}"] = spec["factories"][name]
            parameters.append(f"{name}=_FACTORY")
            made = f"_factory{index}() if {name} is _FACTORY else {name}"
            lines.append(f"  _set(self, {name!r}, {made})")
            continue
        if name in spec["defaults"]:
            arguments[f"_default{index}"] = spec["defaults"][name]
            parameters.append(f"{name}=_default{index}")
        elif parameters and "=" in parameters[-1]:
            raise TypeError(f"non-default field {name!r} follows a default one in {cls.__name__}")
        else:
            parameters.append(name)
        lines.append(f"  _set(self, {name!r}, {name})")
    source = (
        f"def _make({', '.join(arguments)}):\n"
        f" def __init__(self, {', '.join(parameters)}):\n"
        + ("\n".join(lines) or "  pass")
        + "\n return __init__\n"
    )
    scope: dict[str, Any] = {}
    # The module's globals, as dataclasses does: the annotations resolve there (Sphinx, typing).
    module = sys.modules.get(cls.__module__)
    exec(source, module.__dict__ if module else {}, scope)  # noqa: S102 - our own text
    init: Callable[..., None] = scope["_make"](**arguments)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {**{n: spec["annotations"][n] for n in names}, "return": None}
    return init


@dataclass_transform(frozen_default=True, field_specifiers=(value_field,))
def value(cls: _Class) -> _Class:
    """Make ``cls`` a frozen value class (see the module's description).

    :param cls: the class, with annotated fields.
    :returns: the same class.
    """
    annotations = {
        name: annotation
        for name, annotation in vars(cls).get("__annotations__", {}).items()
        if not _is_class_var(annotation)
    }
    names = list(annotations)
    spec: dict[str, Any] = {
        "annotations": annotations,
        "defaults": {},
        "factories": {},
        "uncompared": [],
    }
    for name in names:
        default = cls.__dict__.get(name, _NO_DEFAULT)
        if isinstance(default, _Field):
            spec["factories"][name] = default.default_factory
            if not default.compare:
                spec["uncompared"].append(name)
            delattr(cls, name)
        elif default is not _NO_DEFAULT:
            spec["defaults"][name] = default
    compared = tuple(name for name in names if name not in spec["uncompared"])

    def key(self: Any) -> tuple[Any, ...]:
        return tuple([getattr(self, name) for name in compared])

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is self.__class__:
            return bool(key(self) == key(other))
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(key(self))

    def __repr__(self: Any) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({shown})"

    own = [__eq__, __hash__] + ([] if "__repr__" in cls.__dict__ else [__repr__])
    for method in own:
        method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)
    attributes: dict[str, Any] = {
        "__init__": _init(cls, names, spec),
        "__setattr__": _frozen,
        "__delattr__": _frozen,
        "__match_args__": tuple(names),
        "_value_spec": spec,
        "__dataclass_fields__": _DataclassFields(),
    }
    for name, attribute in attributes.items():
        setattr(cls, name, attribute)
    return cls
