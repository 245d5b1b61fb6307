"""The raw asyncio drivers: the limit every asyncio benchmark compares the library with."""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["ASYNC_DRIVERS", "available_async_drivers", "raw_connection", "raw_value"]

#: The asyncio drivers, by the name ``AsyncLocker(driver=...)`` takes.
ASYNC_DRIVERS = ("aiomysql", "asyncmy")


def available_async_drivers() -> list[str]:
    """The asyncio drivers that are installed."""
    return [name for name in ASYNC_DRIVERS if importlib.util.find_spec(name) is not None]


async def raw_connection(driver: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """An autocommit connection with the driver's defaults and a cursor on it."""
    if driver == "aiomysql":
        import aiomysql

        options = dict(kwargs)
        options["db"] = options.pop("database")
        connection = await aiomysql.connect(**options, autocommit=True)
        return connection, await connection.cursor()
    import asyncmy

    connection = await asyncmy.connect(**kwargs, autocommit=True)
    return connection, connection.cursor()


async def raw_value(cursor: Any, sql: str, params: tuple[Any, ...]) -> Any:
    """One statement, all rows read as the library reads them; the first column of the first."""
    await cursor.execute(sql, params)
    rows = await cursor.fetchall()
    return rows[0][0] if rows else None
