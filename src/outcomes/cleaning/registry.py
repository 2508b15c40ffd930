"""The metric registry: built-in metrics plus a clinic's own, from `metrics.csv` in the raw folder.

Why a file and not code: a clinic with a new camera system or instrument can add its metrics
(name, which direction is better, unit, valid range, scale) without touching the package.
"""
from __future__ import annotations

import math
from pathlib import Path

from outcomes import contract
from outcomes.cleaning import normalise as nz
from outcomes.raw_files import RawDataError, read_raw_frame

REGISTRY_STEM = "metrics"


def find_registry_file(raw_dir: Path) -> Path | None:
    by_lower = {p.name.lower(): p for p in raw_dir.iterdir() if p.is_file()}
    for suffix in contract.SUFFIXES:
        if REGISTRY_STEM + suffix in by_lower:
            return by_lower[REGISTRY_STEM + suffix]
    return None


def load_registry(path: Path | None) -> tuple[dict[str, contract.Metric], str | None, int, list[dict]]:
    """Built-in metrics, extended (or overridden) by the user's file. Returns (registry, sha256,
    rows, notes).

    The file needs columns `metric` and `better` (lower/higher); `unit`, `low`, `high`, `scale`,
    `min_important` are optional (default: no unit, 0, no upper bound, ratio,
    contract.DEFAULT_MIN_IMPORTANT). A metric left at the default smallest important change gets a
    data-quality note (`notes`, the rows of data_quality.csv): a report's plateau and response
    threshold depend on it. Any bad row stops the run: the registry is configuration.
    """
    registry = dict(contract.METRICS)
    notes: list[dict] = []
    if path is None:
        return registry, None, 0, notes
    frame, digest = read_raw_frame(path)
    for needed in ("metric", "better"):
        if needed not in frame.columns:
            raise RawDataError(f"{path.name}: required column '{needed}' is missing", file=path, column=needed)
    for i, row in enumerate(frame.to_dict("records")):
        line = i + 2
        name = nz.text(row.get("metric"))
        if name is None:
            raise RawDataError(f"{path.name}: row {line}: metric name is blank", file=path, column="metric")
        key = nz._key(name)
        better = (nz.text(row.get("better")) or "").lower()
        if better not in ("lower", "higher"):
            raise RawDataError(f"{path.name}: row {line}: 'better' must be lower or higher, not {row.get('better')!r}",
                               file=path, column="better")
        bounds = []
        for column, default in (("low", 0.0), ("high", math.inf)):
            parsed = nz.number(row.get(column))
            if parsed.reason == "missing":
                bounds.append(default)
            elif parsed.reason:
                raise RawDataError(f"{path.name}: row {line}: {column} is not a number: {row.get(column)!r}",
                                   file=path, column=column)
            else:
                bounds.append(parsed.value)
        if bounds[0] > bounds[1]:
            raise RawDataError(f"{path.name}: row {line}: low > high", file=path, column="low")
        scale = (nz.text(row.get("scale")) or "ratio").lower()
        if scale not in contract.SCALES_OF_MEASUREMENT:
            raise RawDataError(f"{path.name}: row {line}: 'scale' must be ratio or interval (or blank: ratio), "
                               f"not {row.get('scale')!r}", file=path, column="scale")
        smallest = nz.number(row.get("min_important"))
        if smallest.reason == "missing":
            notes.append(_default_note(path.name, key, line, scale))
        elif smallest.reason or smallest.value <= 0:
            raise RawDataError(f"{path.name}: row {line}: min_important must be a positive number (or blank: "
                               f"{contract.DEFAULT_MIN_IMPORTANT:g}), not {row.get('min_important')!r}",
                               file=path, column="min_important")
        registry[key] = contract.Metric(key, better, nz.text(row.get("unit")) or "", bounds[0], bounds[1],
                                        scale=scale, min_important=smallest.value or contract.DEFAULT_MIN_IMPORTANT)
    return registry, digest, len(frame), notes


def _default_note(file: str, metric: str, line: int, scale: str) -> dict:
    """The data-quality note of a metric whose smallest important change is the default."""
    unit = "points of the baseline" if scale == "ratio" else "in the metric's own unit, which no default can know"
    return {"table": REGISTRY_STEM, "source_file": file, "column": "min_important", "value": metric,
            "note": f"no smallest important change given: the default {contract.DEFAULT_MIN_IMPORTANT:g} is used "
                    f"({unit}; it sets the reports' plateau and response threshold): give min_important",
            "rows": None, "first_source_row": line}
