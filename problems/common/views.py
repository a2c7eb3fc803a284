"""What a problem shows of a trained network, as plain arrays (no plotting library here).

A problem returns one of these from ``prediction_view(params, data)``; ``runners.figures``
draws it. A problem of a new family, or one that wants no figure, returns ``None``.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Line:
    """One curve: ``style`` is a matplotlib format string ("-", "--", "o"), ``color`` a
    matplotlib colour ("C0", "k"); an empty ``label`` stays out of the legend."""

    x: np.ndarray
    y: np.ndarray
    label: str = ""
    style: str = "-"
    color: str | None = None


@dataclasses.dataclass(frozen=True)
class Curves:
    """Curves on one pair of axes, with optional vertical marks (e.g. constraint points)."""

    lines: tuple[Line, ...]
    xlabel: str
    ylabel: str
    vlines: tuple[float, ...] = ()
    legend_columns: int = 1


@dataclasses.dataclass(frozen=True)
class Images:
    """Side-by-side fields on one grid; a name starting with "|" (an error) gets a
    sequential colour map of its own."""

    images: tuple[np.ndarray, ...]
    names: tuple[str, ...]
    xlabel: str
    ylabel: str
    extent: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)
