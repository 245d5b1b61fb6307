"""PyMySQLLock.values: classes made by ``value`` behave as ``@dataclass(frozen=True)`` ones do.

Each behaviour is checked side by side with a real frozen dataclass of the same fields, and on
the library's own value classes (public results among them: LossReason, LockInfo, ServerInfo).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from collections.abc import Mapping
from typing import ClassVar

import pytest

from PyMySQLLock.loss import LossCause, LossReason
from PyMySQLLock.progress import Holder
from PyMySQLLock.server import ServerInfo
from PyMySQLLock.statements import LockInfo
from PyMySQLLock.tls import SslMode, TlsRequest
from PyMySQLLock.values import value, value_field


@value
class Point:
    """A docstring of its own."""

    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: Mapping[str, str] = value_field(default_factory=dict, compare=False)


@dataclasses.dataclass(frozen=True)
class RealPoint:
    """The same fields, made by dataclasses."""

    kind: ClassVar[str] = "point"
    x: int
    y: int = 0
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False)


@value
class Shown:
    name: str

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _both(*args, **kwargs):
    return Point(*args, **kwargs), RealPoint(*args, **kwargs)


def test_init_repr_and_signature_are_those_of_a_dataclass():
    ours, real = _both(1, y=2)
    assert repr(ours) == repr(real).replace("RealPoint", "Point")
    assert (ours.x, ours.y, ours.tags) == (1, 2, {})
    assert str(inspect.signature(Point)) == str(inspect.signature(RealPoint))
    assert Point.__match_args__ == RealPoint.__match_args__ == ("x", "y", "tags")
    assert Point.kind == "point"
    assert Point.__doc__ == "A docstring of its own."
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, 2, {}, 4)  # type: ignore[call-arg]


def test_each_instance_gets_its_own_default_from_the_factory():
    first, second = Point(1), Point(1)
    assert first.tags == {}
    assert first.tags is not second.tags


def test_equality_and_hash_leave_out_uncompared_fields_as_a_dataclass_does():
    for make in (Point, RealPoint):
        assert make(1, 2, {"a": "b"}) == make(1, 2)
        assert hash(make(1, 2, {"a": "b"})) == hash(make(1, 2))
        assert make(1, 2) != make(1, 3)
    assert Point(1, 2) != RealPoint(1, 2)  # another class is never equal
    assert Point(1, 2).__eq__(object()) is NotImplemented
    assert len({Point(1), Point(1), Point(2)}) == 2


def test_instances_are_frozen_with_the_dataclasses_error():
    point = Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del point.y  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.other = 3  # type: ignore[attr-defined]
    assert point == Point(1)


def test_the_dataclasses_functions_work_on_them():
    point = Point(1, 2, {"a": "b"})
    assert dataclasses.is_dataclass(point)
    assert dataclasses.is_dataclass(Point)
    assert [(f.name, f.compare) for f in dataclasses.fields(point)] == [
        (f.name, f.compare) for f in dataclasses.fields(RealPoint)
    ]
    assert dataclasses.replace(point, y=5) == Point(1, 5)
    assert dataclasses.asdict(point) == {"x": 1, "y": 2, "tags": {"a": "b"}}
    assert dataclasses.astuple(Point(1, 2)) == (1, 2, {})


def test_copies_and_pickles_are_equal_and_still_frozen():
    point = Point(1, 2, {"a": "b"})
    pickled = pickle.loads(pickle.dumps(point))  # noqa: S301 - our own bytes
    for twin in (copy.copy(point), copy.deepcopy(point), pickled):
        assert twin == point
        assert twin.tags == {"a": "b"}
        with pytest.raises(dataclasses.FrozenInstanceError):
            twin.x = 0  # type: ignore[misc]


def test_a_repr_of_its_own_is_kept():
    assert repr(Shown("x")) == "<x>"


def test_a_field_without_default_after_one_with_a_default_is_refused():
    with pytest.raises(TypeError, match="non-default field 'b'"):

        @value
        class Broken:
            a: int = 0
            b: int


@pytest.mark.parametrize(
    "made",
    [
        LossReason.now(LossCause.NOT_HELD, "gone", 1234),
        LockInfo("name", "ns:name", 7, "app", "10.0.0.1:5000", 1.5),
        ServerInfo.from_version_string("5.5.5-10.11.2-MariaDB", {"wsrep_on": "ON"}),
        Holder(12, "app", "db"),
        TlsRequest(SslMode.REQUIRED, ca="/ca.pem"),
    ],
    ids=lambda made: type(made).__name__,
)
def test_the_library_s_values_are_frozen_comparable_and_dataclass_compatible(made):
    assert dataclasses.is_dataclass(made)
    twin = pickle.loads(pickle.dumps(made))  # noqa: S301 - our own bytes
    assert twin == made
    assert hash(twin) == hash(made)
    assert repr(made).startswith(f"{type(made).__name__}(")
    first = dataclasses.fields(made)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, first, None)
    assert dataclasses.replace(made) == made


def test_server_info_compares_without_its_variables():
    plain = ServerInfo.from_version_string("8.0.36")
    assert plain == ServerInfo("mysql", (8, 0, 36), "8.0.36", {"version_comment": "x"})
    assert plain.variables == {}
