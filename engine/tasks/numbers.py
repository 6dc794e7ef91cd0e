"""How numbers are written in questions, reasoning chains and calculator results."""

from __future__ import annotations

import math


def format_number(x: float) -> str:
    """Up to 6 significant digits (all integer digits are kept), no exponent, no trailing zeros:
    6000.0 -> '6000', 0.0254 -> '0.0254', 2.2046226 -> '2.20462'."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    decimals = max(0, 5 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
