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


def load_registry(path: Path | None) -> tuple[dict[str, contract.Metric], str | None, int]:
    """Built-in metrics, extended (or overridden) by the user's file. Returns (registry, sha256, rows).

    The file needs columns `metric` and `better` (lower/higher); `unit`, `low`, `high`, `scale`
    are optional (default: no unit, 0, no upper bound, ratio). Any bad row stops the run: the
    registry is configuration.
    """
    registry = dict(contract.METRICS)
    if path is None:
        return registry, None, 0
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
        registry[key] = contract.Metric(key, better, nz.text(row.get("unit")) or "", bounds[0], bounds[1],
                                        scale=scale)
    return registry, digest, len(frame)
