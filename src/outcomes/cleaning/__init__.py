"""`outcomes.clean`: raw clinic exports in, validated and linked tables out.

Flow: read every raw file (fatal problems raise RawDataError before anything is written) ->
normalise each cell -> reject unusable rows with a reason, count duplicates -> derive ages,
session counts and baselines -> build outcomes with improvement and photo-quality flags ->
validate the processed tables (pandera) -> write them atomically with a manifest.
"""
from __future__ import annotations

import hashlib
import logging
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable

try:
    import resource
except ImportError:  # not on Windows
    resource = None

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from outcomes import contract, privacy
from outcomes.cleaning import adverse_events as adverse_mod
from outcomes.cleaning import normalise as nz
from outcomes.cleaning import assessments as assess_mod
from outcomes.cleaning import measurements as meas_mod
from outcomes.cleaning import patients as patients_mod
from outcomes.cleaning import schemas
from outcomes.cleaning import sessions as sessions_mod
from outcomes.cleaning import timeline
from outcomes.cleaning.columns import PatientIds, as_arrow
from outcomes.cleaning.registry import find_registry_file, load_registry
from outcomes.loader import frame_from_arrow, load_processed
from outcomes.processed_folder import OutputError, ProcessedWriter
from outcomes.raw_files import RawDataError, RawTable, find_raw_file, find_sourced_files, read_raw_table

__all__ = ["clean", "CleanResult", "cli_clean", "RawDataError", "OutputError"]

log = logging.getLogger(__name__)
NOTE_COLUMNS = ("table", "source_file", "column", "value", "note", "rows", "first_source_row")
SUMMARY_COLUMNS = ("read", "kept", "rejected", "duplicates", "noted")


TABLES = ("patients", "sessions", "measurements", "outcomes", "assessments", "adverse_events")


@dataclass
class CleanResult:
    """What `clean` produced: the processed tables, the rejected rows and the bookkeeping.

    Attributes
    ----------
    rejected : DataFrame
        The rows set aside, each with its table, source file, source row, column, value and reason.
    summary : DataFrame
        Per input table: read, kept, rejected, duplicates, noted.
    manifest : dict
        The run's record (manifest.json): inputs with checksums, rows per table, rejection reasons, settings.
    notes : DataFrame
        Values noted but their rows kept (for example an out-of-range volume left empty).
    out_dir : Path or None
        The processed folder written, or None when nothing was written.
    tables : dict of DataFrame
        The processed tables (see the property).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import outcomes
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = outcomes.simulate(n_patients=60, seed=1, out_dir=Path(tmp) / "raw")
    ...     result = outcomes.clean(Path(tmp) / "raw", as_of="2100-01-01")  # no out_dir: nothing written
    >>> result.out_dir is None, sorted(result.tables)
    (True, ['adverse_events', 'assessments', 'measurements', 'outcomes', 'patients', 'sessions'])
    >>> len(result.tables["patients"])
    60
    """

    rejected: pd.DataFrame
    summary: pd.DataFrame  # per input table: read, kept, rejected, duplicates, noted
    manifest: dict[str, Any]
    notes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(NOTE_COLUMNS)))
    out_dir: Path | None = None
    in_memory: dict[str, pa.Table] | None = None  # the tables, when they were not written

    @cached_property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The processed tables as pandas DataFrames, with the dtypes `load_processed` gives.

        Made on first use (the command line never needs them): from memory when nothing was
        written, else read back from `out_dir` (streamed there batch by batch, they were never
        all in memory at once).
        """
        if self.in_memory is not None:
            return {name: frame_from_arrow(table) for name, table in self.in_memory.items()}
        loaded = load_processed(self.out_dir)
        return {name: loaded[name] for name in TABLES if name in loaded}

    def __repr__(self) -> str:
        where = f" -> {self.out_dir}" if self.out_dir else " (not written)"
        return f"CleanResult{where}\n{self.summary.to_string()}"


def clean(raw_dir: str | Path, out_dir: str | Path | None = None, *, monthfirst: bool = False,
          as_of: date | str | None = None) -> CleanResult:
    """Validate, normalise and link the raw exports in `raw_dir`.

    Writes the processed folder (atomically) only when `out_dir` is given. Raises
    RawDataError (with `.file` and `.column`) when a required file or column is missing or
    a file cannot be read; nothing is written then. `as_of`: the day of the export (default:
    today); an event dated after it, or before 1990, is rejected as a typo.

    The steps, in the contract's order: read the raw tables, parse each (every cell normalised),
    check each against the patients kept, tidy, link measurements to sessions and baselines,
    compute outcomes, write.

    Parameters
    ----------
    raw_dir : str or Path
        The clinic's raw exports (never modified).
    out_dir : str or Path, optional
        The processed folder to write; None: keep the tables in memory (``CleanResult.tables``).
    monthfirst : bool
        Read ambiguous dates such as 03/04/2024 as month first.
    as_of : date or str, optional
        The day of the export (default: today).

    Returns
    -------
    CleanResult

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import outcomes
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     raw, processed = Path(tmp) / "raw", Path(tmp) / "processed"
    ...     _ = outcomes.simulate(n_patients=60, seed=1, out_dir=raw)
    ...     result = outcomes.clean(raw, processed, as_of="2100-01-01")
    ...     written = sorted(p.name for p in processed.glob("*.parquet"))
    >>> written
    ['adverse_events.parquet', 'assessments.parquet', 'measurements.parquet', 'outcomes.parquet', 'patients.parquet', 'sessions.parquet']
    >>> result.summary.loc["patients", ["read", "kept", "rejected"]].tolist()
    [60, 60, 0]
    >>> int(result.summary["rejected"].sum()) == len(result.rejected)
    True
    """
    raw_dir, until, lap = Path(raw_dir), np.datetime64(date.today() if as_of is None else as_of, "D"), _stopwatch()
    check_folders(raw_dir, out_dir)
    raws, file_notes = read_tables(raw_dir)
    registry_path = find_registry_file(raw_dir)
    registry, registry_sha, registry_rows, registry_notes = load_registry(registry_path)
    file_notes += registry_notes
    lap("read")
    with ProcessedWriter(out_dir) if out_dir is not None else nullcontext() as writer:  # checks --out first
        tables = parse_tables(raws, registry, monthfirst, until)
        lap("parse")
        ids = patient_ids(tables)
        lap("ages")
        tidy = check_and_tidy(tables, ids, registry)
        lap("check, tidy")
        linked, cells, duplicate = meas_mod.link(tables.photos, tidy.keys, tidy.patients, registry)
        lap("link")
        out = Output(writer, schemas.processed_schemas(list(registry)))
        out.table("patients", tidy.patients)
        out.table("sessions", tidy.sessions)
        for name, frame in tidy.optional.items():
            out.table(name, frame)
        out.batches("measurements", meas_mod.batches(tables.photos, linked, tidy.patients, registry))
        lap("measurements")
        chosen = timeline.choose(linked, cells, duplicate)
        out.batches("outcomes", meas_mod.outcome_batches(tables.photos, linked, chosen,
                                                         tidy.patients.assign(area=tidy.area), registry))
        lap("outcomes")
        rejected, summary, notes = bookkeeping(tables, file_notes, writer)
        lap("bookkeeping")
        inputs = [{"table": raw.name, "file": raw.path.name, "sha256": raw.sha256, "rows": raw.rows,
                   **({"delimiter": raw.delimiter} if raw.delimiter else {})} for raw in raws.values()]
        manifest = _manifest(raw_dir, inputs, registry_path, registry_sha, registry_rows, summary, rejected, notes,
                             _no_baseline(linked, chosen), out.rows(), monthfirst, until, registry)
        result = CleanResult(rejected=rejected, summary=summary, manifest=manifest, notes=notes,
                             in_memory=out.in_memory() if writer is None else None)
        if writer is not None:
            result.out_dir = writer.commit(manifest)
            lap("write")
    return result


def check_folders(raw_dir: Path, out_dir: str | Path | None) -> None:
    """The raw folder exists, and `out_dir` is not inside it (raw data is never written to)."""
    if not raw_dir.is_dir():
        raise RawDataError(f"raw-data folder {raw_dir} does not exist", file=raw_dir)
    if out_dir is not None and raw_dir.resolve() in (Path(out_dir).resolve(), *Path(out_dir).resolve().parents):
        raise OutputError(f"--out {out_dir} is inside the raw-data folder {raw_dir}, which is never written to")


@dataclass
class Tables:
    """Every raw table parsed (each cell normalised, no row dropped yet)."""

    patients: Any
    sessions: Any
    photos: meas_mod.Photos
    assessments: Any | None
    adverse_events: Any | None

    def with_modules(self) -> dict[str, tuple[Any, Any]]:
        """Table name -> (parsed table, its cleaning module), for the tables present."""
        pairs = {"patients": (self.patients, patients_mod), "sessions": (self.sessions, sessions_mod),
                 "photo_metrics": (self.photos, meas_mod), "assessments": (self.assessments, assess_mod),
                 "adverse_events": (self.adverse_events, adverse_mod)}
        return {name: pair for name, pair in pairs.items() if pair[0] is not None}


def parse_tables(raws: dict[str, RawTable], registry: dict[str, contract.Metric], monthfirst: bool,
                 until: np.datetime64) -> Tables:
    """Normalise every cell of every table; reject rows on their own fields where no link is needed
    (patients). `until`: the export's day (events after it are typos)."""
    patients = patients_mod.parse(raws["patients"], monthfirst)
    patients_mod.check(patients)
    return Tables(
        patients=patients,
        sessions=sessions_mod.parse(raws["sessions"], monthfirst, until),
        photos=meas_mod.concat([meas_mod.parse(raw, registry, monthfirst, until)
                                for raw in raws.values() if raw.name == "photo_metrics"]),
        assessments=assess_mod.parse(raws["assessments"], monthfirst, until) if "assessments" in raws else None,
        adverse_events=adverse_mod.parse(raws["adverse_events"], monthfirst, until) if "adverse_events" in raws else None,
    )


def patient_ids(tables: Tables) -> PatientIds:
    """Ages from birth dates (they need each patient's first session, or first photo), then the
    ids known and kept."""
    pat = tables.patients
    patients_mod.finish(pat, _age_reference_dates(pat, tables.sessions, tables.photos))
    kept = pat.values["patient_id"][pat.ledger.ok].sort_values(kind="stable")
    known = pat.values["patient_id"].dropna().unique()
    return PatientIds(known=pa.array(np.asarray(known, dtype=object), type=pa.large_string()),
                      kept=pa.array(kept.to_numpy(dtype=object), type=pa.large_string()))


@dataclass
class Tidy:
    """The tidy small tables and the completed sessions' keys (timeline.completed_keys)."""

    patients: pd.DataFrame
    sessions: pd.DataFrame
    keys: np.ndarray
    optional: dict[str, pd.DataFrame]  # assessments, adverse_events when present
    area: pd.Series  # each patient's treated area (sessions_mod.treated_area), aligned with patients


def check_and_tidy(tables: Tables, ids: PatientIds, registry: dict[str, contract.Metric]) -> Tidy:
    """Link rows to kept patients and reject the rest; tidy sessions, patients, assessments and
    adverse events (these two get their session counts here)."""
    sessions_mod.check(tables.sessions, ids)
    meas_mod.check(tables.photos, ids, registry)
    sessions = sessions_mod.tidy(tables.sessions)
    patients = patients_mod.tidy(tables.patients, sessions)
    assert patients["patient_id"].tolist() == ids.kept.to_pylist()  # row i is patient code i
    keys = timeline.completed_keys(sessions, patients["patient_id"])
    optional = {}
    if tables.assessments is not None:
        ass = tables.assessments
        optional["assessments"] = assess_mod.tidy(ass, _sessions_at(keys, assess_mod.check(ass, ids),
                                                                    ass.values["assessed_at"], False))
    if tables.adverse_events is not None:
        adv = tables.adverse_events
        optional["adverse_events"] = adverse_mod.tidy(adv, _sessions_at(keys, adverse_mod.check(adv, ids),
                                                                        adv.values["event_date"], True))
    return Tidy(patients=patients, sessions=sessions, keys=keys, optional=optional,
                area=sessions_mod.treated_area(sessions, patients["patient_id"]))


class Output:
    """Each processed table validated by pandera against its schema, every row (schemas.validate),
    and handed to the writer, or kept in memory when nothing is written. Big tables come batch by
    batch, each validated as it comes, so they are never in memory whole (a check across rows,
    like `unique`, would see one batch: only the small tables have one, see tests)."""

    def __init__(self, writer: ProcessedWriter | None, checks: dict[str, Any]):
        self.writer, self.checks = writer, checks
        self.kept: dict[str, pa.Table] = {}
        self.counts: dict[str, int] = {}

    def table(self, name: str, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        schemas.validate(self.checks[name], table)
        if self.writer is not None:
            self.writer.write(name, table)
        else:
            self.kept[name] = table
        self.counts[name] = table.num_rows

    def batches(self, name: str, batches: Iterable[pa.RecordBatch]) -> None:
        required = frozenset(column for column, spec in self.checks[name].columns.items() if not spec.nullable)
        stream = self.writer.stream(name, required) if self.writer is not None else None
        parts, rows = [], 0
        for batch in batches:
            schemas.validate(self.checks[name], batch, first_row=rows)
            rows += batch.num_rows
            if stream is not None:
                stream.write(batch)
            else:
                parts.append(batch)
        if stream is not None:
            stream.close()
        else:
            self.kept[name] = pa.Table.from_batches(parts)
        self.counts[name] = rows

    def rows(self) -> dict[str, int]:
        return {name: self.counts[name] for name in TABLES if name in self.counts}

    def in_memory(self) -> dict[str, pa.Table]:
        return {name: self.kept[name] for name in TABLES if name in self.kept}


def bookkeeping(tables: Tables, file_notes: list[dict],
                writer: ProcessedWriter | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The rejected rows, the per-table summary and the data-quality notes (written as CSVs
    when there is a writer), from the tables' ledgers once every row's fate is known."""
    parsed = tables.with_modules()
    for table, module in parsed.values():
        module.note(table)
    ledgers = {name: table.ledger for name, (table, _) in parsed.items()}
    rejected = pd.concat([led.frame() for led in ledgers.values()], ignore_index=True)
    summary = pd.DataFrame({name: led.counts() for name, led in ledgers.items()}).T[list(SUMMARY_COLUMNS)]
    summary.index.name = "table"
    notes = pd.DataFrame(file_notes + [n for led in ledgers.values() for n in led.notes], columns=list(NOTE_COLUMNS))
    notes["rows"] = notes["rows"].astype("Int64")
    notes["first_source_row"] = notes["first_source_row"].astype("Int64")
    rejected, notes = privacy.group_old_ages(rejected), privacy.group_old_ages(notes)  # ages 90+ as "90+"
    if writer is not None:
        writer.write_csv("rejected", rejected)
        writer.write_csv("data_quality", notes)
    return rejected, summary, notes


def _no_baseline(linked: timeline.Linked, chosen: timeline.Chosen) -> dict[str, int]:
    """Outcome rows without a baseline; patients lacking one for some / for all their series."""
    lacking = chosen.base < 0
    patient = linked.patient[chosen.rows]
    rows = np.bincount(patient, minlength=1)
    without = np.bincount(patient[lacking], minlength=len(rows))
    return {"outcome_rows": int(lacking.sum()), "patients_with_some": int((without > 0).sum()),
            "patients_with_none": int(((without == rows) & (rows > 0)).sum())}


def _stopwatch():
    """Log the seconds each step took, its CPU seconds, the memory pages it touched for the first
    time (page faults: costly on some virtual machines) and the peak memory so far (logger
    outcomes.cleaning, level DEBUG)."""
    def now() -> tuple[float, float, int, float]:
        if resource is None:
            return time.perf_counter(), 0.0, 0, 0.0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return time.perf_counter(), usage.ru_utime + usage.ru_stime, usage.ru_minflt, usage.ru_maxrss / 1024**2

    last = [now()]

    def lap(step: str) -> None:
        if log.isEnabledFor(logging.DEBUG):
            then, last[0] = last[0], now()
            log.debug("%-15s %6.2f s  (cpu %5.2f s, %6d page faults, peak %.2f GB)", step, last[0][0] - then[0],
                      last[0][1] - then[1], last[0][2] - then[2], last[0][3])

    return lap


def read_tables(raw_dir: Path) -> tuple[dict[str, RawTable], list[dict]]:
    """Find and read every raw table (RawDataError for the first problem) and the notes on
    ignored files and columns.

    Keys are table names; a table that may come as several files (contract.SOURCED_TABLES) has
    its `<table>.<source>.<suffix>` files under `<table>.<source>` (each RawTable's `name` is the table's).
    """
    found: dict[str, tuple[str, str, Path, list[Path]]] = {}  # key -> (table, source, file read, ignored)
    missing = []
    for table in contract.TABLES:
        path, ignored = find_raw_file(raw_dir, table)
        if path is not None:
            found[table] = (table, contract.DEFAULT_SOURCE, path, ignored)
        if table in contract.SOURCED_TABLES:
            for source, (path, ignored) in find_sourced_files(raw_dir, table).items():
                found[f"{table}.{source}"] = (table, source, path, ignored)
        if table in contract.REQUIRED_TABLES and not any(t == table for t, *_ in found.values()):
            missing.append(table)
    if missing:
        table = missing[0]
        forms = ", ".join(table + s for s in contract.SUFFIXES)
        raise RawDataError(f"required file {table} ({forms}) not found in {raw_dir}", file=raw_dir / f"{table}.csv")
    # a missing file is reported (above) before any is read, and a problem in a small file (the
    # first in table order) before the biggest is read
    biggest = max(found, key=lambda key: found[key][2].stat().st_size)
    raws = {key: read_raw_table(path, table) for key, (table, _, path, _) in found.items() if key != biggest}
    raws[biggest] = read_raw_table(found[biggest][2], found[biggest][0])
    for key, raw in raws.items():
        raw.source = found[key][1]
    notes: list[dict] = []
    for key, (table, _, path, ignored) in found.items():
        notes += [_file_note(table, other.name, "", f"ignored: {path.name} is read instead") for other in ignored]
        schemas.raw_schema(table).validate(raws[key].frame.head(0))
        notes += [_file_note(table, path.name, column, "column not in the contract; ignored")
                  for column in raws[key].ignored_columns]
    return {key: raws[key] for key in found}, notes


def _file_note(table: str, file: str, column: str, note: str) -> dict:
    return {"table": table, "source_file": file, "column": column, "value": "", "note": note,
            "rows": None, "first_source_row": None}


def _age_reference_dates(pat, ses, mea) -> pd.Series:
    """Per patient id: first completed session, else first booked session, else first photo."""
    no_age = nz.has_reason(pat.reasons["age"], "missing")
    wanted = pat.values["patient_id"][pat.ledger.ok & no_age].dropna().unique()
    if not len(wanted):
        return pd.Series(dtype="datetime64[ns]")
    sv = ses.values
    asked = pc.is_in(as_arrow(sv["patient_id"]), value_set=pa.array(wanted)).to_numpy(zero_copy_only=False)
    usable = nz.has_reason(ses.reasons["session_date"], "") & asked  # (arrow's look-up: a fifth of pandas' isin)
    completed = usable & (sv["status"] == "completed").to_numpy(dtype=bool, na_value=False)
    ref = sv.loc[completed].groupby("patient_id")["session_date"].min()
    ref = ref.combine_first(sv.loc[usable].groupby("patient_id")["session_date"].min())
    still = np.setdiff1d(np.asarray(wanted, dtype=object).astype(str), ref.index.to_numpy(dtype=str))
    if len(still):  # no session at all: the first photo (a look-up per distinct id, then codes)
        patient = mea.patient
        wanted_ids = np.append(pc.is_in(patient.uniques, value_set=pa.array(still, type=pa.large_string()))
                               .to_numpy(zero_copy_only=False), False)
        mask = wanted_ids[patient.codes] & nz.has_reason(mea.reasons["taken_at"], "")
        first = pd.Series(mea.taken_at[mask]).groupby(patient.codes[mask]).min()
        first.index = np.asarray(patient.uniques.to_pylist(), dtype=object)[first.index.to_numpy()]
        ref = ref.combine_first(first)
    return ref.astype("datetime64[ns]")


def _sessions_at(keys: np.ndarray, codes: np.ndarray, when: pd.Series, inclusive: bool) -> np.ndarray:
    days = timeline.day_numbers(when.to_numpy(dtype="datetime64[ns]"))
    valid = (codes >= 0) & ~np.isnat(when.to_numpy(dtype="datetime64[ns]"))
    counts = timeline.count_sessions(keys, np.where(valid, codes, 0), np.where(valid, days, 0), inclusive)
    return np.where(valid, counts, 0).astype(np.int64)


def _manifest(raw_dir, inputs, registry_path, registry_sha, registry_rows, summary, rejected, notes,
              no_baseline, outputs, monthfirst, until, registry) -> dict[str, Any]:
    from outcomes import __version__

    if registry_path is not None:
        inputs.append({"table": "metrics", "file": registry_path.name, "sha256": registry_sha, "rows": registry_rows})
    snapshot = hashlib.sha256("".join(f"{i['file']}:{i['sha256']};" for i in inputs).encode()).hexdigest()[:12]
    reasons = rejected.groupby(["table", "reason"]).size().sort_values(ascending=False)
    return {
        "contract_version": contract.CONTRACT_VERSION,
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "synthetic": any(p.name == "truth.json" for p in raw_dir.iterdir()),
        "snapshot": snapshot,
        "inputs": inputs,
        "tables": {name: {k: int(v) for k, v in row.items()} for name, row in summary.iterrows()},
        "outputs": outputs,
        "rejection_reasons": [{"table": t, "reason": r, "rows": int(n)} for (t, r), n in reasons.items()],
        "no_baseline": no_baseline,
        "notes": int(len(notes)),
        "settings": {
            "monthfirst": monthfirst,
            "event_dates": {"earliest": contract.EARLIEST_EVENT_DATE, "latest": str(until)},
            "source_row": "header is row 1, first data row is row 2; blank lines are not counted",
            "baseline_max_days_before_first_session": contract.BASELINE_MAX_DAYS_BEFORE_FIRST_SESSION,
            "qc_max_delta_e": contract.QC_MAX_DELTA_E,
            "qc_max_yaw_diff_deg": contract.QC_MAX_YAW_DIFF_DEG,
            "qc_max_blur": contract.QC_MAX_BLUR,
            "qc_max_clipped": contract.QC_MAX_CLIPPED,
            "qc_max_pose_error": contract.QC_MAX_POSE_ERROR,
        },
        "metric_registry": {m.name: {"better": m.better, "unit": m.unit, "low": m.low,
                                     "high": None if np.isinf(m.high) else m.high, "scale": m.scale,
                                     "min_important": m.min_important} for m in registry.values()},
    }


# --- command line ----------------------------------------------------------------------
def summary_text(result: CleanResult, top: int = 5) -> str:
    """The short report `outcomes clean` prints."""
    lines = [result.summary.to_string(), ""]
    if len(result.rejected):
        counts = result.rejected.groupby(["table", "reason"]).size().sort_values(ascending=False).head(top)
        lines.append("Top rejection reasons:")
        lines += [f"  {t:<15} {r:<40} {n:>8}" for (t, r), n in counts.items()]
    else:
        lines.append("No rows rejected.")
    nb = result.manifest["no_baseline"]
    lines.append(
        f"Without baseline: {nb['outcome_rows']} outcome rows; {nb['patients_with_some']} patients lack a baseline "
        f"for some metric/view, {nb['patients_with_none']} for all (improvement left empty, flagged no_baseline)."
    )
    values = result.notes.loc[result.notes["rows"].notna()]
    if len(values):
        counts = values.groupby(["table", "column"])["rows"].sum().sort_values(ascending=False).head(top)
        lines.append("Values left empty or kept as unknown (rows kept; column `noted` above; data_quality.csv):")
        lines += [f"  {t:<15} {c:<40} {n:>8}" for (t, c), n in counts.items()]
    if len(result.notes):
        lines.append(f"{len(result.notes)} data-quality notes (data_quality.csv).")
    return "\n".join(lines)


def cli_clean(raw: str | Path, out: str | Path, *, strict: bool = False, monthfirst: bool = False) -> int:
    """Run `clean` for the command line: print a summary; return the exit code (0, 1 strict, 2 bad input)."""
    try:
        result = clean(raw, out, monthfirst=monthfirst)
    except (RawDataError, OutputError) as exc:
        print(f"outcomes clean: error: {exc}", file=sys.stderr)
        print("Nothing was written; earlier processed data is untouched.", file=sys.stderr)
        return 2
    print(summary_text(result))
    print(f"Wrote {result.out_dir}")
    if strict and len(result.rejected):
        print(f"--strict: {len(result.rejected)} rows were rejected (see rejected.csv)", file=sys.stderr)
        return 1
    return 0
