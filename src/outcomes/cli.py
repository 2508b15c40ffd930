"""The `outcomes` command: simulate, demo, clean, photos, report.

Each command is a thin shell over the library; exit codes are part of the contract:
0 ok, 1 a soft failure (--strict rejections, a failed report), 2 bad input or usage.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from outcomes import config

app = typer.Typer(
    help="Mesotherapy outcomes: clean clinic exports, model improvement, write reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def simulate(
    out: Annotated[Path, typer.Option(help="Empty (or new) folder to write the raw tables and truth.json into.")],
    patients: Annotated[int, typer.Option(min=1, help="Number of patients.")] = config.DEMO_PATIENTS,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = config.DEFAULT_SEED,
    tidy: Annotated[bool, typer.Option("--tidy", help="Write a clean export instead of a messy one.")] = False,
) -> None:
    """Write a synthetic cohort in the raw-data contract, with its true effects in truth.json.

    OUT must be empty or absent (hidden files aside); otherwise nothing is written (exit 2)."""
    from outcomes.processed_folder import OutputError
    from outcomes.simulation import refuse_unless_empty, simulate as run

    try:
        refuse_unless_empty(out)  # before the work; writing checks again and never replaces a file
        cohort = run(n_patients=patients, seed=seed, tidy=tidy)
        cohort.write(out)
    except OutputError as exc:
        typer.echo(f"outcomes simulate: error: {exc}", err=True)
        raise typer.Exit(2)
    kind = "tidy" if tidy else "messy"
    rows = len(cohort.tables["photo_metrics"])
    typer.echo(f"Wrote a synthetic ({kind}) cohort of {patients} patients, {rows:,} photo_metrics rows (seed {seed}) to {out}")


@app.command()
def demo(
    raw: Annotated[Path, typer.Option(help="Raw-data folder.")] = config.RAW_DIR,
    patients: Annotated[int, typer.Option(min=1)] = config.DEMO_PATIENTS,
    seed: Annotated[int, typer.Option()] = config.DEFAULT_SEED,
    if_empty: Annotated[bool, typer.Option("--if-empty", help="When RAW holds files, say so and exit 0 (not 2), writing nothing.")] = False,
) -> None:
    """Write the synthetic demo cohort into RAW, which must be empty or absent (hidden files aside).

    A folder holding anything (even a lone `Patients.CSV`, or sessions without patients) is
    refused with exit 2 and left as it is; no file is ever replaced. With --if-empty (what
    `make report` uses) such a folder is left alone with exit 0, so the real data is cleaned.
    """
    from outcomes.processed_folder import OutputError
    from outcomes.simulation import visible_entries, write_demo_if_empty

    names = visible_entries(raw) if if_empty and raw.is_dir() else []
    if names:
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        typer.echo(f"{raw} holds {shown}: no demo data written; those files are used as they are.", err=True)
        return
    try:
        write_demo_if_empty(raw, n_patients=patients, seed=seed)
    except OutputError as exc:
        typer.echo(f"outcomes demo: error: {exc}", err=True)
        raise typer.Exit(2)


@app.command()
def clean(
    raw: Annotated[Path, typer.Option(help="Folder with the raw exports.")] = config.RAW_DIR,
    out: Annotated[Path, typer.Option(help="Folder for the processed tables.")] = config.PROCESSED_DIR,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 if any row was rejected.")] = False,
    monthfirst: Annotated[bool, typer.Option("--monthfirst", help="Read 04/03/2025 as April 3rd.")] = False,
) -> None:
    """Validate, normalise and link the raw exports into data/processed (atomically)."""
    from outcomes.cleaning import cli_clean

    raise typer.Exit(cli_clean(raw, out, strict=strict, monthfirst=monthfirst))


@app.command()
def photos(
    photos: Annotated[Path, typer.Option(help="Folder of photos with their index.csv (only read, never written).")],
    out: Annotated[Path, typer.Option(help="The photo_metrics file to write, e.g. data/raw/photo_metrics.photos.csv (.csv or .parquet).")] = config.RAW_DIR / "photo_metrics.photos.csv",
    scheduler: Annotated[Optional[str], typer.Option(help="A Dask scheduler's address (tcp://host:8786): measure on that cluster.")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Local processes (default: every core; 1: no pool).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Measure the photos of PHOTOS/index.csv into rows of the raw photo_metrics table.

    Rerunnable: photos already in OUT (same bytes) are not measured again. OUT is replaced
    atomically, and only when this command wrote it (otherwise exit 2, nothing touched)."""
    from outcomes.photos.command import cli_photos

    raise typer.Exit(cli_photos(photos, out, scheduler=scheduler, workers=workers, quiet=quiet))


from outcomes.reports.params import PapermillStyleCommand  # noqa: E402 - accepts papermill's `-p name value`


@app.command(cls=PapermillStyleCommand, context_settings={"allow_extra_args": False})
def report(
    notebook: Annotated[Optional[str], typer.Argument(help="One notebook to run (name or path); omit to run the grid.")] = None,
    param: Annotated[Optional[list[str]], typer.Option("-p", "--param", help="A notebook parameter: -p name=value or, as in papermill, -p name value. Repeat for more.")] = None,
    grid: Annotated[Path, typer.Option(help="YAML file listing the reports to run.")] = config.ROOT / "reports.yml",
    processed: Annotated[Path, typer.Option(help="Processed-data folder the notebooks read.")] = config.PROCESSED_DIR,
    out: Annotated[Path, typer.Option(help="Output folder; each run gets its own OUT/<YYYY-MM-DD>/<HHMMSS>/, OUT/latest points at the newest.")] = config.REPORTS_DIR,
    jobs: Annotated[int, typer.Option(min=1, help="Reports run in parallel.")] = 1,
) -> None:
    """Run parameterised notebooks with papermill and turn each into a PDF without code."""
    from outcomes.reports.runner import cli_report

    raise typer.Exit(cli_report(notebook=notebook, params=param or [], grid=grid, processed=processed, out=out, jobs=jobs))


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
