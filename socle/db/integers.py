"""The integers the stores hold, as types for every schema and route that takes one.

Ids are signed 64-bit integers on SQLite and PostgreSQL alike. A number outside a column's range names
no row and fits no column: the drivers fail on it (an overflow on SQLite, an out-of-range error on
PostgreSQL), so it is refused where it comes in, with a 422 that names the parameter.
"""
from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

MAX_INTEGER = 2**63 - 1
"""The largest integer a store holds (a signed 64-bit ``INTEGER``/``BIGINT``)."""
MAX_INT32 = 2**31 - 1
"""The largest integer of a PostgreSQL ``INTEGER`` column."""

Id = Annotated[int, Ge(1), Le(MAX_INTEGER)]
"""A row's id: ids start at 1 on both stores."""

Offset = Annotated[int, Ge(0), Le(MAX_INTEGER)]
"""How many rows of a listing to skip."""

Amount = Annotated[int, Ge(0), Le(MAX_INTEGER)]
"""A non-negative quantity kept in a 64-bit column (tokens, a budget)."""

Count = Annotated[int, Ge(0), Le(MAX_INT32)]
"""A non-negative quantity kept in a 32-bit column (a limit per minute or per day)."""
