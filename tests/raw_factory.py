"""Small hand-made raw folders for the cleaning tests (a helper module, not a test file)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

PATIENTS = [
    {"patient_id": "P1", "age": 45, "sex": "F", "skin_type": "III", "concern": "fine_lines", "clinic_id": "C1"},
    {"patient_id": "P2", "age": 60, "sex": "M", "skin_type": "V", "concern": "skin_quality", "clinic_id": "C1"},
]
SESSIONS = [
    {"patient_id": "P1", "session_date": "2025-01-10", "status": "completed", "volume_ml": 2},
    {"patient_id": "P1", "session_date": "2025-02-10", "status": "completed", "volume_ml": 2},
    {"patient_id": "P2", "session_date": "2025-01-05", "status": "completed", "volume_ml": 3},
]
PHOTO_METRICS = [
    {"patient_id": "P1", "photo_id": "a", "taken_at": "2025-01-10", "metric": "wrinkles", "value": 10.0},
    {"patient_id": "P1", "photo_id": "b", "taken_at": "2025-02-10", "metric": "wrinkles", "value": 9.0},
    {"patient_id": "P2", "photo_id": "c", "taken_at": "2025-01-05", "metric": "hydration", "value": 40.0},
    {"patient_id": "P2", "photo_id": "d", "taken_at": "2025-02-05", "metric": "hydration", "value": 50.0},
]


def write_raw(folder: Path, *, patients=None, sessions=None, photo_metrics=None, sep: str = ",", **more) -> Path:
    """Write the given tables (lists of dicts or DataFrames) as CSV; defaults for the required three."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"patients": PATIENTS if patients is None else patients,
              "sessions": SESSIONS if sessions is None else sessions,
              "photo_metrics": PHOTO_METRICS if photo_metrics is None else photo_metrics, **more}
    for name, rows in tables.items():
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
        frame.to_csv(folder / f"{name}.csv", index=False, sep=sep)
    return folder
