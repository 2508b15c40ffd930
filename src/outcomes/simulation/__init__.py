"""Synthetic cohorts in the raw-data contract, with the truth that generated them.

Why: every statistic in this project is checked against data whose true effects are known.
`simulate` writes the five raw tables (messy by default, like a clinic export; `tidy=True` for a
clean one) and truth.json. Same seed, same bytes. See docs/simulator.md for every assumption.
"""
from __future__ import annotations

import functools
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from outcomes import config
from outcomes.contract import SKIN_TYPES, TABLES
from outcomes.processed_folder import OutputError
from outcomes.simulation.cohort import build_cohort
from outcomes.simulation.mess import DELIMITERS, make_messy, messiness_record
from outcomes.simulation.parameters import DropoutParams, base_truth, expected_improvement

__all__ = ["DropoutParams", "SimulatedCohort", "demo_tables", "simulate", "write_demo_if_empty", "expected_improvement",
           "refuse_unless_empty", "visible_entries"]


@dataclass
class SimulatedCohort:
    """The raw tables exactly as written (`tables`), and truth.json as a dict (`truth`)."""

    tables: dict[str, pd.DataFrame]
    truth: dict[str, Any]

    @property
    def tidy(self) -> bool:
        return bool(self.truth["tidy"])

    def delimiter(self, table: str) -> str:
        return "," if self.tidy else DELIMITERS.get(table, ",")

    def write(self, out_dir: str | Path) -> Path:
        """Write truth.json and <table>.csv for the five tables into out_dir (created if needed).

        out_dir must be empty or absent (hidden files such as .gitkeep aside): a synthetic cohort
        never joins or replaces a clinic's exports. Files are created exclusively, so even a race
        cannot overwrite one; on failure the files made here are removed. truth.json comes first
        (a partial folder is still marked synthetic) and patients last (`clean` refuses a partial one).
        """
        out = Path(out_dir)
        refuse_unless_empty(out)
        out.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []
        try:
            with open(out / "truth.json", "x", encoding="utf-8") as fh:
                made.append(out / "truth.json")
                fh.write(json.dumps(self.truth, indent=1, allow_nan=False) + "\n")
            for name in sorted(TABLES, key=lambda table: table == "patients"):
                write_csv(self.tables[name], out / f"{name}.csv", self.delimiter(name), made)
        except BaseException:
            for path in made:
                path.unlink(missing_ok=True)
            raise
        return out


def visible_entries(folder: Path) -> list[str]:
    """The names in `folder` that are not hidden (not starting with '.'), sorted."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def refuse_unless_empty(folder: Path) -> None:
    """Raise OutputError unless `folder` is absent or empty (hidden files aside), saying what is there."""
    if not folder.exists() and not folder.is_symlink():
        return
    if not folder.is_dir():
        raise OutputError(f"{folder} exists and is not a folder")
    names = visible_entries(folder)
    if names:
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        raise OutputError(f"{folder} is not empty (it holds {shown}): synthetic data is only written into an "
                          "empty folder, and nothing there was changed")


def write_csv(df: pd.DataFrame, path: Path, delimiter: str = ",", made: list[Path] | None = None) -> None:
    """UTF-8 CSV via pyarrow (fast for millions of rows); NaN -> empty. The file must not exist
    (created exclusively); its path is added to `made` once created."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    buf = io.BytesIO()
    try:  # plain values, like most exports; quote only if some value holds a delimiter or quote
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, delimiter=delimiter, quoting_style="none"))
    except pa.ArrowInvalid:
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, delimiter=delimiter, quoting_style="needed"))
    with open(path, "xb") as fh:
        if made is not None:
            made.append(path)
        fh.write((delimiter.join(df.columns) + "\n").encode("utf-8"))
        fh.write(buf.getvalue())


def simulate(
    n_patients: int = config.DEMO_PATIENTS,
    seed: int = config.DEFAULT_SEED,
    out_dir: str | Path | None = None,
    tidy: bool = False,
    dropout: DropoutParams | None = None,
) -> SimulatedCohort:
    """Simulate a cohort; write it to out_dir when given. The messy and tidy exports of one seed
    describe the same patients and the same truth. ``dropout`` sets how strongly dropout depends
    on outcome (default: :class:`DropoutParams`'s, docs/simulator.md); truth.json records it.

    Parameters
    ----------
    n_patients, seed : int
        Cohort size and random seed (one seed, one cohort).
    out_dir : str or Path, optional
        Folder to write the raw CSV exports and truth.json into (absent or empty); None: in memory only.
    tidy : bool
        Canonical export (no mess) instead of the messy clinic export.
    dropout : DropoutParams, optional
        How strongly dropout depends on outcome.

    Returns
    -------
    SimulatedCohort
        The raw tables as written (``tables``) and the truth (``truth``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import outcomes
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     cohort = outcomes.simulate(n_patients=60, seed=1, out_dir=Path(tmp) / "raw")
    ...     written = sorted(p.name for p in (Path(tmp) / "raw").iterdir())
    >>> written
    ['adverse_events.csv', 'assessments.csv', 'patients.csv', 'photo_metrics.csv', 'sessions.csv', 'truth.json']
    >>> len(cohort.truth["patients"]), len(cohort.tables["patients"])
    (60, 60)
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be at least 1, got {n_patients}")
    cohort_seq, mess_seq = np.random.SeedSequence(seed).spawn(2)
    dropout = DropoutParams() if dropout is None else dropout
    cohort = build_cohort(int(n_patients), np.random.default_rng(cohort_seq), dropout)
    truth = base_truth(seed, n_patients, tidy, dropout)
    if tidy:
        tables = cohort.tables
        truth["messiness"] = {"note": "tidy export: canonical names, ISO dates, no bad rows, ',' CSV",
                              "shares": {}}
    else:
        tables = make_messy(cohort, np.random.default_rng(mess_seq))
        truth["messiness"] = messiness_record()
    extra = cohort.extra
    truth["patients"] = {
        pid: {"response_factor": round(float(r), 6), "age": int(a), "skin_type": SKIN_TYPES[s],
              "planned_sessions": int(p), "completed_sessions": int(d)}
        for pid, r, a, s, p, d in zip(cohort.patient_ids.tolist(), cohort.response_factor, cohort.age,
                                      cohort.skin_type, extra["planned"], extra["completed_sessions"])
    }
    result = SimulatedCohort(tables, truth)
    if out_dir is not None:
        result.write(out_dir)
    return result


def write_demo_if_empty(raw_dir: str | Path = config.RAW_DIR, n_patients: int = config.DEMO_PATIENTS,
                        seed: int = config.DEFAULT_SEED) -> Path:
    """Write the messy demo cohort into raw_dir if it is empty or absent (hidden files aside),
    with rendered photos of a sample of its patients in raw_dir/photos (`demo_photo_patients`).

    Anything else raises OutputError naming what is there, and nothing is written: a folder
    with any export (`Patients.CSV`, or sessions without patients) is never mixed with or
    overwritten by synthetic data.
    """
    from outcomes.photos.simulate import photo_candidates, simulate_photos

    raw = Path(raw_dir)
    refuse_unless_empty(raw)  # before the work; `write` checks again and never replaces a file
    simulate(n_patients=n_patients, seed=seed, tidy=False).write(raw)
    # the photos follow the tidy export of the same seed: the same patients, photo ids and truth
    tidy = simulate(n_patients=n_patients, seed=seed, tidy=True)
    shown = min(demo_photo_patients(n_patients), len(photo_candidates(tidy)))
    try:
        if shown:
            simulate_photos(raw / "photos", n_patients=shown, seed=seed, size=config.DEMO_PHOTO_SIZE, cohort=tidy)
    except BaseException:  # no demo without its photos (a rerun with --if-empty would keep it so)
        for name in ("truth.json", *(f"{table}.csv" for table in TABLES)):
            (raw / name).unlink(missing_ok=True)
        if (raw / "photos").is_dir() and not any((raw / "photos").iterdir()):
            (raw / "photos").rmdir()
        raise
    bar = "!" * 78
    print(f"{bar}\n!!  SYNTHETIC DEMO DATA: {n_patients} simulated patients (seed {seed}) written to {raw},\n"
          f"!!  with rendered photos of {shown} of them in {raw / 'photos'}.\n"
          f"!!  These are NOT real patients. Put your clinic's exports there to analyse real data.\n{bar}",
          file=sys.stderr)
    return raw


def demo_photo_patients(n_patients: int) -> int:
    """How many demo patients get photos: one in config.DEMO_PHOTO_SHARE, at least 1, at most
    config.DEMO_PHOTO_PATIENTS (few: the photos take time to render and measure, and disk space)."""
    return min(config.DEMO_PHOTO_PATIENTS, max(1, n_patients // config.DEMO_PHOTO_SHARE))


@functools.lru_cache(maxsize=4)
def _demo_tables(n_patients: int, seed: int, tidy: bool) -> dict[str, pd.DataFrame]:
    import tempfile

    from outcomes.cleaning import clean

    with tempfile.TemporaryDirectory(prefix="outcomes-demo-") as tmp:
        simulate(n_patients, seed, Path(tmp) / "raw", tidy=tidy)
        return clean(Path(tmp) / "raw", as_of="2100-01-01").tables


def demo_tables(n_patients: int = 150, seed: int = config.DEFAULT_SEED, tidy: bool = False) -> dict[str, pd.DataFrame]:
    """Processed tables of a small simulated cohort, in memory: what ``load_processed`` returns
    for a folder made by ``simulate`` and ``clean``. For examples and quick experiments (the
    tables are made once per argument set in a process; each call returns copies).

    Examples
    --------
    >>> from outcomes import simulation
    >>> tables = simulation.demo_tables(n_patients=60, seed=1)
    >>> {"patients", "sessions", "outcomes"} <= set(tables), tables["patients"]["patient_id"].nunique()
    (True, 60)
    """
    return {name: table.copy() for name, table in _demo_tables(int(n_patients), int(seed), bool(tidy)).items()}
