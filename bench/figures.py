"""How the reports write a figure: "-" when there is none, thousands grouped from 100 up."""

from __future__ import annotations

import math


def fig(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"
