"""Small cohorts shaped like outcomes.parquet with a known truth, for the model tests.

The truth has the simulator's form (docs/simulator.md): after n sessions a patient's
expected improvement is ``emax * (1 - exp(-k n)) * (1 + age_slope (age - 45)) * skin[type] * r``
with a per-patient response factor r ~ N(1, sd_r), plus measurement noise. Optional dropout
(unrelated to outcome) gives patients unequal numbers of visits. Dropout that depends on the
outcome is tested on the simulator's own cohorts (test_models_recovery.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SKIN_TYPES = ["I", "II", "III", "IV", "V", "VI"]
SKIN_SHARES = [0.07, 0.28, 0.48, 0.10, 0.05, 0.02]
SKIN_MULT = {"I": 1.10, "II": 1.05, "III": 1.0, "IV": 0.90, "V": 0.80, "VI": 0.75}
TRUTH = {"emax": 20.0, "k": 0.55, "age_ref": 45.0, "age_slope": -0.01, "sd_r": 0.5, "noise": 4.0}


def expected(n, age, skin_type, truth=TRUTH, skin_mult=SKIN_MULT):
    """True population-mean improvement_pct after n sessions (response factor 1)."""
    n = np.asarray(n, dtype=float)
    age = np.asarray(age, dtype=float)
    mult = np.vectorize(skin_mult.get)(np.asarray(skin_type, dtype=object))
    return truth["emax"] * (1 - np.exp(-truth["k"] * n)) * (1 + truth["age_slope"] * (age - truth["age_ref"])) * mult


def cohort(n_patients: int = 400, seed: int = 1, n_sessions: int = 6, dropout: float = 0.0, truth=TRUTH,
           metric: str = "hydration") -> pd.DataFrame:
    """One row per patient x session count (0..n_sessions), columns as in outcomes.parquet."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:05d}" for i in range(n_patients)]
    age = np.clip(rng.normal(47, 9, n_patients), 25, 70).round()
    skin = rng.choice(SKIN_TYPES, size=n_patients, p=SKIN_SHARES)
    r = rng.normal(1.0, truth["sd_r"], n_patients)
    sex = rng.choice(["F", "M"], size=n_patients, p=[0.95, 0.05])
    rows = []
    for i in range(n_patients):
        for n in range(n_sessions + 1):
            mean = expected(n, age[i], skin[i], truth) * r[i]
            y = 0.0 if n == 0 else mean + rng.normal(0, truth["noise"])
            rows.append((ids[i], n, y, age[i], skin[i], sex[i]))
            if n >= 1 and rng.random() < dropout:
                break
    df = pd.DataFrame(rows, columns=["patient_id", "sessions", "improvement_pct", "age", "skin_type", "sex"])
    df.insert(1, "metric", metric)
    df.insert(2, "view", "front")
    df.insert(4, "days_since_baseline", df["sessions"] * 21)
    df.insert(5, "baseline", 50.0)
    df.insert(6, "value", 50.0 * (1 + df["improvement_pct"] / 100))
    df.insert(7, "change", df["value"] - df["baseline"])
    df["skin_type"] = pd.Categorical(df["skin_type"], categories=SKIN_TYPES, ordered=True)
    df["concern"] = "skin_quality"
    df["clinic_id"] = "C1"
    df["qc_ok"] = True
    df["qc_reasons"] = ""
    df["improvement"] = df["improvement_pct"]  # what the models fit: the percentage, on a ratio scale
    cols = ["patient_id", "metric", "view", "sessions", "days_since_baseline", "baseline", "value", "change",
            "improvement_pct", "improvement", "age", "skin_type", "sex", "concern", "clinic_id", "qc_ok", "qc_reasons"]
    return df[cols]
