"""Reading raw files (formats, delimiters, encodings, headers) and writing processed data atomically."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import outcomes
from outcomes import contract
from outcomes.cli import app
from outcomes.loader import load_manifest, load_processed
from outcomes.processed_folder import ParquetStream
from outcomes.raw_files import RawDataError, _categorical, normalise_header, read_raw_table
from raw_factory import PATIENTS, PHOTO_METRICS, SESSIONS, write_raw

runner = CliRunner()


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def processed(tmp_path):
    """A folder with good processed data from an earlier run."""
    out = tmp_path / "processed"
    outcomes.clean(write_raw(tmp_path / "good"), out)
    return out


def leftovers(out: Path) -> list[str]:
    """Hidden siblings of `out` other than the version folder it links to."""
    current = out.readlink().name if out.is_symlink() else None
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".") and p.name != current)


def run_cli(raw: Path, out: Path, *extra: str):
    return runner.invoke(app, ["clean", "--raw", str(raw), "--out", str(out), *extra])


# --- fatal problems: exit 2, a message naming the file (and column), nothing written ------------
def bad_raw(tmp_path: Path, kind: str) -> tuple[Path, str, str | None]:
    """A raw folder with one fatal problem; returns (folder, file named in the message, column)."""
    raw = write_raw(tmp_path / kind)
    path = raw / "photo_metrics.csv"
    if kind == "missing_file":
        (raw / "sessions.csv").unlink()
        return raw, "sessions", None
    if kind == "missing_column":
        pd.DataFrame(PHOTO_METRICS).drop(columns="value").to_csv(path, index=False)
        return raw, "photo_metrics.csv", "value"
    if kind == "no_age":
        pd.DataFrame(PATIENTS).drop(columns="age").to_csv(raw / "patients.csv", index=False)
        return raw, "patients.csv", "age"
    if kind == "empty":
        path.write_bytes(b"")
        return raw, "photo_metrics.csv", None
    if kind == "binary":
        path.write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8)))
        return raw, "photo_metrics.csv", None
    if kind == "latin1":
        frame = pd.DataFrame(PATIENTS).assign(clinic_id=["Clinique Genève", "Zürich"])
        (raw / "patients.csv").write_bytes(frame.to_csv(index=False).encode("latin-1"))
        return raw, "patients.csv", None
    if kind == "ragged":
        path.write_text("patient_id,photo_id,taken_at,metric,value\nP1,a,2025-01-10,wrinkles,10,oops,more\n")
        return raw, "photo_metrics.csv", None
    raise AssertionError(kind)


KINDS = ["missing_file", "missing_column", "no_age", "empty", "binary", "latin1", "ragged"]


@pytest.mark.parametrize("kind", KINDS)
def test_fatal_input_exits_2_names_the_file_and_leaves_earlier_data_untouched(tmp_path, processed, kind):
    raw, file, column = bad_raw(tmp_path, kind)
    before = snapshot(processed)
    result = run_cli(raw, processed)
    assert result.exit_code == 2, result.output
    assert file in result.stderr
    if column:
        assert f"'{column}'" in result.stderr
    assert snapshot(processed) == before
    assert leftovers(processed) == []  # no temporary folders left


@pytest.mark.parametrize("kind", KINDS)
def test_fatal_input_raises_raw_data_error_with_file_and_column(tmp_path, kind):
    raw, file, column = bad_raw(tmp_path, kind)
    with pytest.raises(RawDataError) as info:
        outcomes.clean(raw, tmp_path / "never")
    assert file in Path(info.value.file).name and info.value.column == column
    assert not (tmp_path / "never").exists()


def test_a_missing_file_is_reported_before_any_file_is_read(tmp_path, monkeypatch):
    raw, _, _ = bad_raw(tmp_path, "missing_file")
    (raw / "photo_metrics.csv").write_bytes(b"\x00\x01 not csv")  # would fail if it were read first
    from outcomes import cleaning

    read = []
    monkeypatch.setattr(cleaning, "read_raw_table", lambda *a: read.append(a) or read_raw_table(*a))
    with pytest.raises(RawDataError, match="required file sessions") as info:
        outcomes.clean(raw)
    assert Path(info.value.file).name == "sessions.csv" and read == []


def test_a_bad_small_file_is_reported_before_the_big_one_is_read(tmp_path, monkeypatch):
    raw, file, column = bad_raw(tmp_path, "no_age")
    (raw / "photo_metrics.csv").write_bytes(b"\x00\x01 not csv" * 10_000)  # the biggest; would fail if it were read
    from outcomes import cleaning

    read = []
    monkeypatch.setattr(cleaning, "read_raw_table", lambda path, table: read.append(table) or read_raw_table(path, table))
    with pytest.raises(RawDataError, match="age") as info:
        outcomes.clean(raw)
    assert Path(info.value.file).name == file and "photo_metrics" not in read


def test_latin1_message_says_not_utf8_and_where(tmp_path):
    raw, _, _ = bad_raw(tmp_path, "latin1")
    with pytest.raises(RawDataError, match=r"not UTF-8.*offset \d+ \(line 2\)"):
        outcomes.clean(raw)


def test_missing_raw_folder(tmp_path):
    result = run_cli(tmp_path / "nope", tmp_path / "out")
    assert result.exit_code == 2 and "does not exist" in result.stderr


# --- formats, delimiters, headers --------------------------------------------------------------
def test_header_normalisation():
    assert normalise_header(" Patient ID ") == "patient_id"
    assert normalise_header("\ufeffHead-Yaw  Deg") == "head_yaw_deg"


def test_aliases_case_and_spacing_in_headers(tmp_path):
    raw = tmp_path / "raw"
    write_raw(raw)
    pd.DataFrame(PATIENTS).rename(columns={"patient_id": " Subject ID", "skin_type": "PHOTOTYPE", "clinic_id": "Clinic"}
                                  ).to_csv(raw / "patients.csv", index=False)
    pd.DataFrame(SESSIONS).rename(columns={"patient_id": "pid", "session_date": "Visit-Date"}).to_csv(raw / "sessions.csv", index=False)
    pd.DataFrame(PHOTO_METRICS).rename(columns={"taken_at": "Captured At", "patient_id": "Patient"}).assign(
        extra="x").to_csv(raw / "photo_metrics.csv", index=False)
    result = outcomes.clean(raw)
    assert result.summary["kept"].tolist() == [2, 3, 4]
    assert result.tables["patients"]["skin_type"].tolist() == ["III", "V"]
    assert ((result.notes["column"] == "extra") & result.notes["note"].str.contains("ignored")).any()


def test_semicolon_decimal_comma_and_bom(tmp_path):
    raw = write_raw(tmp_path / "raw")
    text = "\ufeffpatient_id;photo_id;taken_at;metric;value;blur\nP1;a;2025-01-10;wrinkles;10,5;0,25\nP1;b;2025-02-10;wrinkles;9,5;0,75\n"
    (raw / "photo_metrics.csv").write_text(text, encoding="utf-8")
    m = outcomes.clean(raw).tables["measurements"]
    assert m["value"].tolist() == [10.5, 9.5] and m["blur"].tolist() == [0.25, 0.75]


def test_comma_file_keeps_comma_as_text_not_decimal(tmp_path):
    raw = write_raw(tmp_path / "raw")
    (raw / "photo_metrics.csv").write_text('patient_id,photo_id,taken_at,metric,value\nP1,a,2025-01-10,wrinkles,"10,5"\n')
    result = outcomes.clean(raw)
    assert result.rejected["reason"].tolist() == ["not_a_number"]


@pytest.mark.parametrize("fmt", ["csv.gz", "parquet", "xlsx"])
def test_other_formats_clean_like_csv(tmp_path, fmt):
    csv_raw = write_raw(tmp_path / "csv")
    other = tmp_path / fmt
    other.mkdir()
    for table in ("patients", "sessions", "photo_metrics"):
        frame = pd.read_csv(csv_raw / f"{table}.csv", dtype=str)
        target = other / f"{table}.{fmt}"
        if fmt == "csv.gz":
            target.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
        elif fmt == "parquet":
            if table == "photo_metrics":  # typed columns, as a real parquet export would have
                frame = frame.assign(value=frame["value"].astype(float), taken_at=pd.to_datetime(frame["taken_at"]))
            frame.to_parquet(target)
        else:
            if table == "sessions":
                frame = frame.assign(session_date=pd.to_datetime(frame["session_date"]))  # real Excel dates
            frame.to_excel(target, index=False)
    want = outcomes.clean(csv_raw).tables["outcomes"]
    got = outcomes.clean(other)
    pd.testing.assert_frame_equal(got.tables["outcomes"], want)
    assert got.manifest["inputs"][0]["file"] == f"patients.{fmt}"


def test_csv_wins_over_other_formats_and_the_rest_is_noted(tmp_path):
    raw = write_raw(tmp_path / "raw")
    pd.DataFrame(PATIENTS).iloc[:1].to_parquet(raw / "patients.parquet")
    result = outcomes.clean(raw)
    assert len(result.tables["patients"]) == 2
    assert result.notes["source_file"].eq("patients.parquet").any()


def test_raw_table_keeps_text_cells_and_source_rows(tmp_path):
    raw = write_raw(tmp_path / "raw")
    table = read_raw_table(raw / "sessions.csv", "sessions")
    assert list(table.frame.columns) == ["patient_id", "session_date", "status", "volume_ml"]
    assert table.frame["volume_ml"].tolist() == ["2", "2", "3"]
    assert table.frame["patient_id"].dtype == "category"  # each distinct cell is normalised once
    assert table.source_rows.tolist() == [2, 3, 4]
    assert table.sha256 == hashlib.sha256((raw / "sessions.csv").read_bytes()).hexdigest()


# --- writing and loading ------------------------------------------------------------------------
def test_load_processed_gives_contract_dtypes(processed):
    tables = load_processed(processed)
    assert {"patients", "sessions", "measurements", "outcomes", "rejected"} <= set(tables)
    o = tables["outcomes"]
    assert list(o.columns[: len(contract.OUTCOME_COLUMNS)]) == list(contract.OUTCOME_COLUMNS)
    assert o["skin_type"].dtype == contract.SKIN_TYPE_DTYPE and o["skin_type"].cat.ordered
    assert o["sessions"].dtype == "int64" and o["qc_ok"].dtype == bool
    assert pd.api.types.is_datetime64_any_dtype(tables["sessions"]["session_date"])
    assert str(tables["sessions"]["session_number"].dtype) == "Int64"


def test_loaded_tables_equal_the_in_memory_result(tmp_path):
    """Written (streamed to parquet, read back) or kept in memory: the same tables, the same dtypes."""
    raw = write_raw(tmp_path / "raw", photo_metrics=PHOTO_METRICS + [dict(PHOTO_METRICS[0], makeup="yes", blur="0.2")])
    in_memory = outcomes.clean(raw).tables
    outcomes.clean(raw, tmp_path / "out")
    loaded = load_processed(tmp_path / "out")
    assert set(in_memory) == {"patients", "sessions", "measurements", "outcomes"}
    for name, frame in in_memory.items():
        pd.testing.assert_frame_equal(loaded[name], frame, check_dtype=True)
    assert pd.api.types.is_string_dtype(loaded["outcomes"]["metric"]) and loaded["outcomes"]["metric"].dtype != "category"


def _failures(error) -> set[tuple[str, str, int]]:
    """(column, check, table row) of each failure a pandera SchemaErrors lists."""
    cases = error.value.failure_cases
    return set(zip(cases["column"], cases["check"], cases["index"].astype("Int64").fillna(-1).astype(int)))


def test_pandera_validates_every_row_of_a_streamed_table(tmp_path):
    """The big tables are validated batch by batch as they are written: a bad value in the last
    row of the last batch is found by pandera, named by table, column, check and table row."""
    from outcomes import cleaning
    from outcomes.cleaning import schemas
    from pandera.errors import SchemaErrors

    small = outcomes.clean(write_raw(tmp_path / "raw")).in_memory["outcomes"]
    big = pa.concat_tables([small] * (30_000 // small.num_rows + 1)).combine_chunks()
    last = big.num_rows - 1

    def stream(table: pa.Table) -> None:  # what clean does with outcomes.parquet, in batches of 4096 rows
        out = cleaning.Output(None, schemas.processed_schemas())
        out.batches("outcomes", iter(table.to_batches(max_chunksize=4096)))
        assert out.rows() == {"outcomes": table.num_rows}

    def changed(column: str, values) -> pa.Table:
        return big.set_column(big.column_names.index(column), column, values)

    stream(big)  # fine as it is
    schemas.validate_processed({"outcomes": big})  # and as one table
    sessions = big.column("sessions").to_numpy().copy()
    sessions[last] = -1
    with pytest.raises(SchemaErrors, match=r'"schema": "outcomes"') as error:
        stream(changed("sessions", pa.array(sessions)))
    assert _failures(error) == {("sessions", "greater_than_or_equal_to(0)", last)}

    age = big.column("age").to_numpy().copy()
    age[-1000:] = 130.0  # many impossible ages: the message shows a few
    age[last - 1] = np.nan  # outcome rows always have an age
    metric = pa.array(["wrinkles"] * last + ["glow"]).dictionary_encode()
    with pytest.raises(SchemaErrors) as error:  # lazy: every failing column and check at once
        stream(changed("age", pa.array(age)).set_column(big.column_names.index("metric"), "metric", metric))
    assert {(column, check) for column, check, _ in _failures(error)} == {
        ("age", "not_nullable"), ("age", f"in_range({contract.AGE_RANGE[0]}, {contract.AGE_RANGE[1]})"),
        ("metric", f"isin({list(contract.METRICS)})")}
    assert ("metric", f"isin({list(contract.METRICS)})", last) in _failures(error)
    assert ("age", "not_nullable", last - 1) in _failures(error)
    message = str(error.value)
    assert "glow" in message and message.count("130.0") == schemas.FEW

    with pytest.raises(SchemaErrors) as error:  # a table checked whole, by arrow table
        schemas.validate_processed({"outcomes": changed("sessions", pa.array(sessions))})
    assert _failures(error) == {("sessions", "greater_than_or_equal_to(0)", last)}


def test_only_element_wise_checks_on_the_streamed_tables():
    """Batch-by-batch validation sees one batch at a time: a check across rows (unique) would
    miss a duplicate in another batch, so the streamed tables have none; patients has one."""
    from outcomes.cleaning import schemas

    element_wise = {"isin", "in_range", "greater_than_or_equal_to"}
    tables = schemas.processed_schemas()
    for name in ("measurements", "outcomes"):
        assert not tables[name].unique
        for column in tables[name].columns.values():
            assert not column.unique and {check.name for check in column.checks} <= element_wise, (name, column.name)
    assert tables["patients"].columns["patient_id"].unique


def test_duplicate_patient_ids_fail_the_schema(tmp_path):
    from outcomes.cleaning import schemas
    from pandera.errors import SchemaErrors

    patients = outcomes.clean(write_raw(tmp_path / "raw")).in_memory["patients"]
    with pytest.raises(SchemaErrors, match="patient_id") as error:
        schemas.validate_processed({"patients": pa.concat_tables([patients, patients])})
    assert {check for _, check, _ in _failures(error)} == {"field_uniqueness"}


def test_load_processed_on_an_empty_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="outcomes clean"):
        load_processed(tmp_path)


def test_a_failing_write_leaves_earlier_data_untouched(tmp_path, processed, monkeypatch):
    before = snapshot(processed)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError, match="disk full"):
        outcomes.clean(write_raw(tmp_path / "raw2"), processed)
    assert snapshot(processed) == before
    assert leftovers(processed) == []


def test_rewrite_replaces_outputs_keeps_hidden_files_and_refuses_foreign_folders(tmp_path, processed):
    (processed / ".gitkeep").write_text("")
    outcomes.clean(write_raw(tmp_path / "raw2", photo_metrics=PHOTO_METRICS[:2]), processed)
    assert (processed / ".gitkeep").exists()
    assert len(load_processed(processed)["measurements"]) == 2
    (processed / "my_notes.txt").write_text("mine")
    result = run_cli(write_raw(tmp_path / "raw3"), processed)
    assert result.exit_code == 2 and "my_notes.txt" in result.stderr
    assert (processed / "my_notes.txt").read_text() == "mine"


# --- reading in blocks, streaming writes -------------------------------------------------------
cells = st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", " c", "dé", "", "x" * 20])), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(cells, min_size=1, max_size=5), st.integers(0, 200), st.integers(0, 3))
def test_block_dictionaries_become_one_code_per_row(blocks, extra, cut):
    # the CSV reader gives each block its own dictionary (in its own order); every row must keep
    # its text, also when a block is a slice of a longer array (`cut` leading cells dropped)
    blocks = [block + [f"v{i}" for i in range(extra)] if k == 0 else block for k, block in enumerate(blocks)]
    chunked = pa.chunked_array([pa.array(["cut"] * cut + b, type=pa.large_string()).dictionary_encode().slice(cut)
                                for b in blocks])
    column = _categorical(chunked)
    assert [None if pd.isna(v) else v for v in column] == [v for b in blocks for v in b]
    assert column.categories.is_unique
    assert column.codes.dtype == (np.int8 if len(column.categories) < 127 else np.int16)  # pandas narrows them


def test_stream_declares_required_and_float_columns_non_nullable(tmp_path):
    stream = ParquetStream(tmp_path / "t.parquet", required=frozenset({"n"}))
    for start in (0, 2):
        stream.write(pa.record_batch({"n": pa.array([start, start + 1]), "x": pa.array([np.nan, 1.5]),
                                      "s": pa.array([None, "a"], type=pa.large_string())}))
    stream.close()
    table = pq.read_table(tmp_path / "t.parquet")
    assert {f.name: f.nullable for f in table.schema} == {"n": False, "x": False, "s": True}
    assert table.column("n").to_pylist() == [0, 1, 2, 3]
    assert np.isnan(table.column("x").to_numpy()[[0, 2]]).all() and table.column("s").null_count == 2


def test_stream_refuses_a_null_in_a_required_column(tmp_path):
    stream = ParquetStream(tmp_path / "t.parquet", required=frozenset({"n"}))
    with pytest.raises(pa.ArrowInvalid, match="non-nullable"):
        stream.write(pa.record_batch({"n": pa.array([1, None])}))


def test_the_csv_reader_reads_every_missing_text_as_missing(tmp_path):
    raw = write_raw(tmp_path / "raw", sessions=[{**s, "status": text} for s, text in
                                                 zip(SESSIONS, ["NULL", "nUlL", "-"])])
    frame = read_raw_table(raw / "sessions.csv", "sessions").frame
    assert frame["status"].isna().tolist() == [True, True, False]


def test_one_loader_for_cleaning_and_reports(tmp_path, processed):
    # the reports load through outcomes.loader: the same tables, manifest and error on an empty folder
    from outcomes.reports import cohort, pdf

    assert load_manifest(tmp_path) is None
    assert load_manifest(processed)["written_by"] == "outcomes clean"
    assert pdf.load_manifest is load_manifest
    with pytest.raises(FileNotFoundError) as from_reports:
        cohort.load(tmp_path)
    with pytest.raises(FileNotFoundError) as from_io:
        load_processed(tmp_path)
    assert str(from_reports.value) == str(from_io.value)
    assert set(cohort.load(processed)) == set(load_processed(processed))
