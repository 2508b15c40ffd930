"""Row-level bookkeeping: which input rows were rejected (and why) and which were duplicates.

Why a ledger: the contract promises that nothing is dropped in silence, i.e. for every
table rows read = kept + rejected + duplicates. Each cleaner records its checks here in
order; the first failing check of a row is its reason, so every rejected input row appears
exactly once in rejected.csv with the column and the raw value that sank it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from outcomes import contract


@dataclass
class Ledger:
    """Rejections and duplicates of one input table, row-aligned with its raw frame."""

    table: str
    source_file: str
    raw: pd.DataFrame  # the raw cells, to quote the offending value
    source_rows: np.ndarray
    checks: list[tuple[str, str]] = field(default_factory=list)  # (column, reason) per check
    notes: list[dict] = field(default_factory=list)
    withheld: tuple[str, ...] = ("birth_date",)  # columns whose values never leave the raw folder
    files: np.ndarray | None = None  # per row, its file's name, when the table was read from several

    @classmethod
    def concat(cls, ledgers: list["Ledger"]) -> "Ledger":
        """One ledger for a table read from several files (before any check): each row keeps its file and row."""
        if len(ledgers) == 1:
            return ledgers[0]
        files = np.concatenate([np.full(led.n_read, led.source_file, dtype=object) for led in ledgers])
        return cls(table=ledgers[0].table, source_file=", ".join(led.source_file for led in ledgers),
                   raw=pd.concat([led.raw for led in ledgers], ignore_index=True),
                   source_rows=np.concatenate([led.source_rows for led in ledgers]),
                   withheld=ledgers[0].withheld, files=files)

    def files_of(self, rows: np.ndarray) -> np.ndarray:
        """The source file of each of `rows`."""
        return np.full(len(rows), self.source_file, dtype=object) if self.files is None else self.files[rows]

    def __post_init__(self) -> None:
        self.n_read = len(self.raw)
        self.failed = np.full(len(self.raw), -1, dtype=np.int16)  # index into checks, -1 = fine
        self.duplicate = np.zeros(len(self.raw), dtype=bool)
        self.noted = np.zeros(len(self.raw), dtype=bool)  # kept rows with a value blanked or made unknown
        self._open = np.ones(len(self.raw), dtype=bool)  # neither rejected nor duplicate (kept up to date)

    @property
    def read(self) -> int:
        return self.n_read

    @property
    def ok(self) -> np.ndarray:
        """Rows neither rejected nor duplicates (a copy)."""
        return self._open.copy()

    def reject(self, mask: np.ndarray | pd.Series, column: str, reason: str) -> None:
        """Reject rows where mask holds (unless an earlier check already did)."""
        new = np.asarray(mask, dtype=bool) & self._open
        if new.any():
            self.checks.append((column, reason))
            self.failed[new] = len(self.checks) - 1
            self._open &= ~new

    def note(self, reasons: pd.Categorical, column: str, note: str, allow: tuple[str, ...] = ("", "missing")) -> None:
        """Record a data-quality note (not a rejection) for rows of kept data with an odd value."""
        codes = np.asarray(reasons.codes)
        alive = self.ok
        for code, reason in enumerate(reasons.categories):
            if reason in allow:
                continue
            rows = np.flatnonzero((codes == code) & alive)
            if not len(rows):
                continue
            self.noted[rows] = True
            values = self.raw[column].iloc[rows].astype("str").fillna("").to_numpy(dtype=object)
            if column in self.withheld:
                values[:] = f"(withheld: {column})"
            found = (pd.DataFrame({"file": self.files_of(rows), "value": values, "row": self.source_rows[rows]})
                     .groupby(["file", "value"])["row"].agg(["size", "min"]))
            for (file, value), (count, first) in found.iterrows():
                self.notes.append({
                    "table": self.table, "source_file": file, "column": column,
                    "value": value, "note": note, "rows": int(count), "first_source_row": int(first),
                })

    def mark_duplicates(self, mask: np.ndarray | pd.Series) -> None:
        duplicate = np.asarray(mask, dtype=bool) & (self.failed < 0)
        self.duplicate |= duplicate
        self._open &= ~duplicate

    def counts(self) -> dict[str, int]:
        rejected = int((self.failed >= 0).sum())
        duplicates = int(self.duplicate.sum())
        kept = int(self.ok.sum())
        assert kept + rejected + duplicates == self.read, "ledger out of balance"
        return {"read": self.read, "kept": kept, "rejected": rejected, "duplicates": duplicates,
                "noted": int((self.noted & self.ok).sum())}

    def frame(self) -> pd.DataFrame:
        """One row per rejected input row: table, source_file, source_row, column, value, reason."""
        rows = np.flatnonzero(self.failed >= 0)
        which = self.failed[rows]
        columns = np.array([c for c, _ in self.checks] or [""], dtype=object)[which]
        reasons = np.array([r for _, r in self.checks] or [""], dtype=object)[which]
        values = np.empty(len(rows), dtype=object)
        for column in np.unique(columns) if len(rows) else []:
            sel = columns == column
            if column in self.withheld:
                values[sel] = f"(withheld: {column})"
            elif column in self.raw.columns:
                cells = self.raw[column].iloc[rows[sel]]
                values[sel] = [_cell_text(v) for v in cells]
            else:
                values[sel] = ""
        return pd.DataFrame({
            "table": pd.Series([self.table] * len(rows), dtype="str"),
            "source_file": pd.Series(self.files_of(rows), dtype="str"),
            "source_row": self.source_rows[rows].astype(np.int64),
            "column": pd.Series(columns, dtype="str"),
            "value": pd.Series(values, dtype="str"),
            "reason": pd.Series(reasons, dtype="str"),
        }, columns=list(contract.REJECTED_COLUMNS))


def _cell_text(value: object) -> str:
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and np.isnan(value):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)

