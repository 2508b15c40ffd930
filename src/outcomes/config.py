"""Where things live. One place for paths and defaults, so notebooks and the CLI agree."""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The project folder: $OUTCOMES_ROOT, else the checkout this package sits in, else the cwd."""
    env = os.environ.get("OUTCOMES_ROOT")
    if env:
        return Path(env).resolve()
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / "data").is_dir():
            return parent
    return Path.cwd().resolve()


ROOT = project_root()
RAW_DIR = ROOT / "data" / "raw"
PHOTOS_DIR = RAW_DIR / "photos"  # photos and their index.csv (docs/photos.md); raw data, never modified
PROCESSED_DIR = ROOT / "data" / "processed"
REPORTS_DIR = ROOT / "reports"
NOTEBOOKS_DIR = ROOT / "notebooks"

KERNEL_NAME = "mesotherapy-outcomes"
DEFAULT_SEED = 20251
DEMO_PATIENTS = 2000
# The demo's rendered photos (data/raw/photos): one patient in DEMO_PHOTO_SHARE, at most
# DEMO_PHOTO_PATIENTS, every photo visit at DEMO_PHOTO_SIZE pixels (about 75 kB a JPEG; README).
DEMO_PHOTO_PATIENTS = 8
DEMO_PHOTO_SHARE = 100
DEMO_PHOTO_SIZE = (800, 600)
MIN_CELL = 5  # group statistics over fewer patients are suppressed in reports
MIN_CELL_FLOOR = 5  # no cohort report may use a lower min_cell (its cover says groups under 5 are hidden)
