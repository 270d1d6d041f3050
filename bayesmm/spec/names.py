"""Parameter names: one record per reported parameter, rendered in one place.

Every summary row is a :class:`Parameter` record: its kind (a fixed effect, a group-level
SD, a correlation, a family parameter), the linear predictor it belongs to (the mean's, or
a part's such as ``zi``), its grouping factor and its term column(s). Its display name
(``sd(Days|Subject)``, ``cor(zi:Intercept,zi:x|site)``), its coordinate label in the
posterior and the columns of ``varcorr`` are rendered from the record; no module parses a
name back into its pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Parameter", "qualify"]


def qualify(part: str, name: str) -> str:
    """A name within a part's linear predictor: ``x``, or ``zi:x`` in the zi part."""
    return f"{part}:{name}" if part else name


@dataclass(frozen=True)
class Parameter:
    """One reported parameter.

    ``kind`` is ``"fixef"``, ``"sd"``, ``"cor"``, ``"family"`` or ``"threshold"`` (an ordinal
    model's Intercept[k]); ``part`` the linear
    predictor (``""`` for the mean's); ``group`` the grouping factor of an SD or a
    correlation; ``columns`` the term column (one for a fixed effect or an SD, two for a
    correlation) or, for a family parameter, its name.
    """

    kind: str
    columns: tuple[str, ...]
    part: str = ""
    group: str | None = None

    @property
    def term(self) -> str:
        """The term as ``varcorr`` shows it: ``Days``, ``zi:x``, ``Intercept,Days``."""
        return ",".join(qualify(self.part, c) for c in self.columns)

    @property
    def name(self) -> str:
        """The display name: the summary's row, the prior table's key, simulate()'s argument."""
        if self.kind == "sd":
            return f"sd({self.term}|{self.group})"
        if self.kind == "cor":
            return f"cor({self.term}|{self.group})"
        if self.kind == "fixef":
            return self.term
        return self.columns[0]

    @property
    def positive(self) -> bool:
        """Whether the parameter lives on positive values (SDs and family parameters)."""
        return self.kind in ("sd", "family")
