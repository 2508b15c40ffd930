"""Photos with recorded truth: rendered skin with a ColorChecker in frame, under varied light.

Why: every photo metric must be checked against a known answer. `render_photo` draws a skin
region whose colour, pigmented spots, lines and fine relief are known (`SkinTruth`), next to an
X-Rite ColorChecker Classic drawn from its reference values, then "photographs" it: a colour cast
from an illuminant of the given colour temperature (von Kries adaptation of the scene's
reflectance-like colours), exposure, shift/rotation/scale, optical blur, sensor noise and JPEG.
`simulate_photos` gives a sample of the cohort simulator's patients such photos at each visit, with
the skin changing as the cohort's truth says. Everything is in docs/photos.md §simulator.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from outcomes.photos.colour import lab_to_linear, linear_to_srgb, reference_linear
from outcomes.photos.images import Box
from outcomes.photos.index import region_text

# Scene layout, as fractions of the image height (skin box) or width/height (chart).
SKIN_SIDE = 0.5  # the skin box is a square of this share of the image height ...
SKIN_CENTRE = (0.70, 0.50)  # ... centred here (x as share of width, y of height)
CHART_AT = (0.06, 0.52, 0.38)  # chart's left, top (shares of width, height) and right; 3:2 as the real one
MIN_CANVAS_H = 1024  # texture is drawn at least this tall (but at most CANVAS_OVERSAMPLING x the
CANVAS_OVERSAMPLING = 2.0  # output), then resampled to the output size
FEATURE_UNIT = 1 / 256  # feature sizes in shares of the skin box side (1 px at the measuring size)

# Texture constants (ASSUMPTIONS, chosen to look like facial skin at ~0.1 mm per unit)
SPOT_SIGMA = 6.0  # units: smoothing of the spot field (spots ~15-40 units across)
SPOT_MIN_AREA = 100.0  # units²: no spot is smaller (about 11 units across)
SPOT_DL, SPOT_DA, SPOT_DB = -10.0, 1.5, 6.0  # CIELAB change inside a spot (pigment: darker, yellower)
LINE_SIGMA = 1.5  # units: half-width (Gaussian sigma) of a line's profile
LINE_DL, LINE_DA, LINE_DB = -12.0, -0.5, -1.0  # CIELAB change at a line's centre (a shadow)
RELIEF_SIGMA = 1.0  # units: correlation length of the fine relief
RELIEF_HIGHPASS = 4.0  # units: relief is high-passed above this scale (no slow shading)
MOTTLE_SIGMA, MOTTLE_SD = 6.0, 1.0  # units, a*/b* units: slow colour variation of the skin
AWB_STRENGTH = 0.6  # share of the light's cast the camera's auto white balance removes (log gains)
EXPOSURE_WHITE = 0.8  # linear level of a perfect white at exposure 1 in the brightest channel
NOISE_SD = 0.004  # sensor noise (sRGB-encoded 0..1) before quantisation
JPEG_QUALITY = 90
FRAME_REFLECTANCE = 0.03  # the chart's black frame (linear)
CARD_REFLECTANCE, CARD_MARGIN = 0.35, 0.3  # plain card around the chart: linear grey, margin in patch pitches


@dataclass(frozen=True)
class SkinTruth:
    """The truth of a skin region, in the units measure_skin reports (docs/photos.md §metrics).

    L, a, b: CIELAB (D65) of the skin between spots and lines; spot_fraction: % of the region
    covered by pigmented spots; line_density: total length of lines in the region divided by the
    region's side (dimensionless); roughness: RMS of the fine relief, in L* units.
    """

    L: float
    a: float
    b: float
    spot_fraction: float
    line_density: float
    roughness: float

    @property
    def ita(self) -> float:
        """ITA° = arctan((L* - 50) / b*) · 180/π (Chardon et al. 1991)."""
        return math.degrees(math.atan2(self.L - 50.0, self.b))


@dataclass(frozen=True)
class Capture:
    """How the photo is taken: illuminant colour temperature (K), exposure (1 = nominal), shift
    (output px), rotation (degrees, counter-clockwise), scale, Gaussian blur (output px), whether
    the chart is in frame, output size (width, height), and the noise seed."""

    cct_k: float = 6500.0
    exposure: float = 1.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    rotation_deg: float = 0.0
    scale: float = 1.0
    blur_sigma_px: float = 0.0
    chart: bool = True
    size: tuple[int, int] = (1600, 1200)
    seed: int = 0


@dataclass(frozen=True)
class RenderedPhoto:
    """The photo as decoded from its JPEG (`rgb`, uint8), the JPEG bytes, and where the skin
    region and the chart are (output pixels; chart_box None without chart)."""

    rgb: np.ndarray
    skin_box: Box
    chart_box: Box | None
    jpeg: bytes = field(repr=False, default=b"")


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    import cv2

    noise = rng.standard_normal(shape).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), sigma) if sigma > 0 else noise


def _skin_geometry(w: int, h: int) -> tuple[float, float, float]:
    """Centre x, centre y and side of the skin box in a w x h canvas."""
    return SKIN_CENTRE[0] * w, SKIN_CENTRE[1] * h, SKIN_SIDE * h


def _lines(rng: np.random.Generator, cx: float, cy: float, side: float) -> list[np.ndarray]:
    """A pool of gently curved, mostly horizontal lines around the skin box (canvas px)."""
    pool = []
    for _ in range(200):
        length = side * rng.uniform(0.15, 0.5)
        angle = rng.normal(0, 0.35) + (np.pi / 2 if rng.random() < 0.15 else 0.0)
        x, y = cx + rng.uniform(-0.75, 0.75) * side, cy + rng.uniform(-0.75, 0.75) * side
        t = np.linspace(-0.5, 0.5, 40)[:, None] * length
        bend = rng.normal(0, 0.08) * length * (1 - (2 * t[:, 0] / length) ** 2)
        d = np.array([np.cos(angle), np.sin(angle)])
        nrm = np.array([-d[1], d[0]])
        pool.append(np.array([x, y]) + t * d + bend[:, None] * nrm)
    return pool


def _inside_length(points: np.ndarray, box: tuple[float, float, float, float]) -> float:
    mid = (points[1:] + points[:-1]) / 2
    seg = np.hypot(*(points[1:] - points[:-1]).T)
    inside = (mid[:, 0] >= box[0]) & (mid[:, 0] < box[2]) & (mid[:, 1] >= box[1]) & (mid[:, 1] < box[3])
    return float(seg[inside].sum())


def skin_lab(truth: SkinTruth, width: int, height: int, texture_seed: int) -> np.ndarray:
    """The skin texture in CIELAB on a width x height canvas (float32 H x W x 3).

    The same texture_seed gives the same layout of spots, lines and relief; the truth's numbers
    only set how much of it shows (spot threshold, how many of the pooled lines, relief amplitude).
    """
    import cv2

    rng = np.random.default_rng(texture_seed)
    cx, cy, side = _skin_geometry(width, height)
    unit = side * FEATURE_UNIT
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    bx = tuple(int(round(v)) for v in box)
    # spots: the highest parts of a smooth random field, blobs of at least SPOT_MIN_AREA, covering
    # exactly spot_fraction % of the skin box (threshold found by bisection)
    field_ = _smooth_noise(rng, (height, width), SPOT_SIGMA * unit)
    spots = np.zeros((height, width), np.float32)
    if truth.spot_fraction > 0:
        inside = np.sort(field_[bx[1]:bx[3], bx[0]:bx[2]].ravel())
        min_area = SPOT_MIN_AREA * unit * unit

        m = int(0.15 * side)  # the bisection looks at the box and a margin around it (fast)
        near = field_[max(0, bx[1] - m):bx[3] + m, max(0, bx[0] - m):bx[2] + m]
        oy, ox = bx[1] - max(0, bx[1] - m), bx[0] - max(0, bx[0] - m)

        def blobs(values: np.ndarray, level: float) -> np.ndarray:
            n, labels, stats, _ = cv2.connectedComponentsWithStats((values > level).astype(np.uint8), connectivity=8)
            keep = stats[:, cv2.CC_STAT_AREA] >= min_area
            keep[0] = False
            return keep[labels]

        lo, hi = 0, inside.size - 1  # indices into the sorted field: lower threshold, more spots
        for _ in range(14):
            mid = (lo + hi) // 2
            share = blobs(near, inside[mid])[oy:oy + bx[3] - bx[1], ox:ox + bx[2] - bx[0]].mean() * 100
            lo, hi = (mid, hi) if share > truth.spot_fraction else (lo, mid)
        spots = cv2.GaussianBlur(blobs(field_, inside[hi]).astype(np.float32), (0, 0), 0.7 * unit)
    # lines: the pooled lines in order, until their length inside the box reaches the density
    canvas = np.zeros((height, width), np.float32)
    wanted, drawn = truth.line_density * side, 0.0
    for points in _lines(rng, cx, cy, side):
        if drawn >= wanted:
            break
        drawn += _inside_length(points, box)
        cv2.polylines(canvas, [np.round(points * 16).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA, shift=4)
    sigma = LINE_SIGMA * unit
    lines = cv2.GaussianBlur(canvas, (0, 0), sigma) * (math.sqrt(2 * math.pi) * sigma)
    lines = np.minimum(lines, 1.0)
    # fine relief: band-passed noise with unit RMS, times the roughness (L* units)
    relief = _smooth_noise(rng, (height, width), RELIEF_SIGMA * unit)
    relief -= cv2.GaussianBlur(relief, (0, 0), RELIEF_HIGHPASS * unit)
    relief /= max(float(relief[bx[1]:bx[3], bx[0]:bx[2]].std()), 1e-9)
    # mottling: slow a*, b* variation (blood, pigment) with mean 0 in the box, so a*, b* stay the truth's
    mottle = [_smooth_noise(rng, (height, width), MOTTLE_SIGMA * unit) for _ in range(2)]
    for m in mottle:
        inside = m[bx[1]:bx[3], bx[0]:bx[2]]
        m -= inside.mean()
        m *= MOTTLE_SD / max(float(inside.std()), 1e-9)
    lab = np.empty((height, width, 3), np.float32)
    lab[..., 0] = truth.L + truth.roughness * relief + SPOT_DL * spots + LINE_DL * lines
    lab[..., 1] = truth.a + mottle[0] + SPOT_DA * spots + LINE_DA * lines
    lab[..., 2] = truth.b + mottle[1] + SPOT_DB * spots + LINE_DB * lines
    return lab


def _draw_chart(scene: np.ndarray) -> Box:
    """Draw the 24 patches (reference linear sRGB) on a black frame, held on a plain grey card
    (so no skin blemish touches the frame); return the chart's box (frame, without the card)."""
    h, w = scene.shape[:2]
    x0, y0, x1 = CHART_AT[0] * w, CHART_AT[1] * h, CHART_AT[2] * w
    y1 = y0 + (x1 - x0) / 1.5
    pitch = (x1 - x0) / 6.3
    m = CARD_MARGIN * pitch
    scene[max(0, int(y0 - m)):int(y1 + m), max(0, int(x0 - m)):int(x1 + m)] = CARD_REFLECTANCE
    scene[int(y0):int(y1), int(x0):int(x1)] = FRAME_REFLECTANCE
    side = 0.84 * pitch
    ox, oy = x0 + 0.15 * pitch + (pitch - side) / 2, y0 + 0.15 * pitch + (pitch - side) / 2
    for k, colour_ in enumerate(reference_linear()):
        r, c = divmod(k, 6)
        px, py = ox + c * pitch, oy + r * pitch
        scene[int(round(py)):int(round(py + side)), int(round(px)):int(round(px + side))] = colour_
    return int(x0), int(y0), int(math.ceil(x1)), int(math.ceil(y1))


def illuminant_matrix(cct_k: float) -> np.ndarray:
    """Scene linear sRGB -> camera linear RGB under a light of cct_k on the Planckian locus
    (Kang et al. 2002 chromaticity): von Kries adaptation of the D65 colours to that white, in the
    camera's Display P3 primaries (as phones encode; sRGB transfer curve), then the camera's own
    white balance, which removes only AWB_STRENGTH of the cast (per-channel gains, in log terms).
    The brightest channel of a perfect white is 1."""
    import colour

    from outcomes.photos.colour import _RGB_TO_XYZ

    white = colour.xy_to_XYZ(colour.temperature.CCT_to_xy_Kang2002(cct_k))
    d65 = colour.xy_to_XYZ(colour.CCS_ILLUMINANTS["CIE 1931 2 Degree Standard Observer"]["D65"])
    cat = colour.adaptation.matrix_chromatic_adaptation_VonKries(d65, white, transform="Von Kries")
    m = colour.RGB_COLOURSPACES["Display P3"].matrix_XYZ_to_RGB @ cat @ _RGB_TO_XYZ
    m = np.diag((m @ np.ones(3)) ** -AWB_STRENGTH) @ m
    return m / (m @ np.ones(3)).max()


def _transform(capture: Capture, w: int, h: int, canvas_scale: float) -> np.ndarray:
    """2x3 affine (canvas px -> canvas px) for the capture's scale, rotation and shift about the centre."""
    import cv2

    m = cv2.getRotationMatrix2D((w / 2, h / 2), capture.rotation_deg, capture.scale)
    m[:, 2] += np.array(capture.shift_px) * canvas_scale
    return m


def render_photo(truth: SkinTruth, capture: Capture, texture_seed: int) -> RenderedPhoto:
    """Render one photo of `truth`'s skin as `capture` says; same texture_seed, same skin."""
    import cv2
    from PIL import Image

    out_w, out_h = capture.size
    canvas_scale = max(1.0, min(MIN_CANVAS_H / out_h, CANVAS_OVERSAMPLING))
    w, h = int(round(out_w * canvas_scale)), int(round(out_h * canvas_scale))
    scene = lab_to_linear(skin_lab(truth, w, h, texture_seed)).astype(np.float32)
    chart_box = _draw_chart(scene) if capture.chart else None
    scene = scene @ (illuminant_matrix(capture.cct_k) * EXPOSURE_WHITE * capture.exposure).T.astype(np.float32)
    m = _transform(capture, w, h, canvas_scale)
    scene = cv2.warpAffine(scene, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if (w, h) != (out_w, out_h):
        scene = cv2.resize(scene, (out_w, out_h), interpolation=cv2.INTER_AREA)
    if capture.blur_sigma_px > 0:
        scene = cv2.GaussianBlur(scene, (0, 0), capture.blur_sigma_px)
    rng = np.random.default_rng(capture.seed)
    encoded = linear_to_srgb(scene) + rng.normal(0, NOISE_SD, scene.shape)
    rgb = np.clip(np.rint(encoded * 255), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=JPEG_QUALITY)
    jpeg = buf.getvalue()
    decoded = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))

    def place(box: tuple[float, float, float, float]) -> Box:
        corners = np.array([[box[0], box[1]], [box[2], box[1]], [box[0], box[3]], [box[2], box[3]]])
        moved = (corners @ m[:, :2].T + m[:, 2]) / canvas_scale
        x0, y0 = moved.min(axis=0)
        x1, y1 = moved.max(axis=0)
        return (max(0, int(math.floor(x0))), max(0, int(math.floor(y0))),
                min(out_w, int(math.ceil(x1))), min(out_h, int(math.ceil(y1))))

    cx, cy, side = _skin_geometry(w, h)
    centre = m[:, :2] @ np.array([cx, cy]) + m[:, 2]
    half = side * capture.scale / 2
    sx, sy = centre / canvas_scale
    skin_box = (int(round(sx - half / canvas_scale)), int(round(sy - half / canvas_scale)),
                int(round(sx + half / canvas_scale)), int(round(sy + half / canvas_scale)))
    return RenderedPhoto(rgb=decoded, skin_box=skin_box,
                         chart_box=place(chart_box) if chart_box else None, jpeg=jpeg)


# --- photos for a sample of the cohort -----------------------------------------------------------
# How each photo metric follows the cohort's truth (docs/photos.md §simulator). Ratio metrics
# change by `emax_pct` of the cohort metric they stand for, times the patient's latent gain g
# (relative to Emax: r·(1 − e^(−k·n))·age·skin·fade, as in the cohort); interval metrics change by
# `emax_units` in their own units. Signs: spots, lines, roughness and redness go down, L* up.
PHOTO_EFFECTS: dict[str, dict[str, Any]] = {
    "spot_area": {"follows": "spots", "scale": "ratio"},
    "line_density": {"follows": "wrinkles", "scale": "ratio"},
    "roughness": {"follows": "texture", "scale": "ratio"},
    "cielab_a": {"follows": "red_areas", "scale": "interval", "emax_units": -1.0},  # ASSUMPTION
    "cielab_l": {"follows": "melanin_index", "scale": "interval", "emax_units": 0.5},  # ASSUMPTION
}
# ASSUMPTIONS inside the ITA categories of Del Bino et al. 2006 for each Fitzpatrick type
ITA_BY_SKIN_TYPE = {"I": 60.0, "II": 48.0, "III": 36.0, "IV": 20.0, "V": 0.0, "VI": -35.0}
B_BY_SKIN_TYPE = {"I": 12.0, "II": 14.0, "III": 16.0, "IV": 18.0, "V": 18.0, "VI": 14.0}
INTERVAL_NOISE_SD = {"cielab_l": 0.3, "cielab_a": 0.3, "cielab_b": 0.3}  # visit-to-visit, own units
TRUTH_COLUMNS = ("patient_id", "photo_id", "taken_at", "view", "file", "sessions", "gain", "cct_k", "exposure",
                 "blur_sigma_px", "chart", "texture_seed", "cielab_l", "cielab_a", "cielab_b", "ita", "spot_area",
                 "line_density", "roughness")
INDEX_COLUMNS = ("patient_id", "photo_id", "taken_at", "view", "file", "region")


def _baseline(rng: np.random.Generator, skin_type: str, age: float) -> SkinTruth:
    ita = rng.normal(ITA_BY_SKIN_TYPE.get(skin_type, 38.0), 4.0)
    b = float(np.clip(rng.normal(B_BY_SKIN_TYPE.get(skin_type, 16.0), 1.5), 8.0, 24.0))
    return SkinTruth(L=50.0 + b * math.tan(math.radians(ita)), a=float(np.clip(rng.normal(11.0, 2.0), 5.0, 17.0)), b=b,
                     spot_fraction=float(np.clip(np.exp(rng.normal(math.log(3.0), 0.5)), 0.5, 12.0)),
                     line_density=float(np.clip(np.exp(rng.normal(math.log(3.0), 0.35)) * (1 + 0.02 * (age - 45)), 0.5, 8.0)),
                     roughness=float(np.clip(np.exp(rng.normal(math.log(1.4), 0.25)), 0.6, 2.4)))


def visit_gain(truth: dict[str, Any], patient_id: str, sessions_done: np.ndarray, visit_days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sessions completed before each visit and the cohort's latent gain g there (fading after the course).

    sessions_done: the patient's completed session dates (datetime64[D]); visit_days: photo dates.
    A photo on a session day is taken before that day's injections.
    """
    p = truth["patients"][patient_id]
    done = np.sort(np.asarray(sessions_done, dtype="datetime64[D]"))
    days = np.asarray(visit_days, dtype="datetime64[D]")
    n = np.searchsorted(done, days, side="left")
    weeks = ((days - done[-1]).astype(float) / 7.0) if done.size else np.zeros(days.size)
    after = (n == done.size) & (done.size > 0) & (weeks > 0)
    fade = np.where(after, 0.5 ** (weeks / truth["half_life_weeks"]), 1.0)
    factor = (1 + truth["age_slope"] * (p["age"] - truth["age_ref"])) * truth["skin_type_multiplier"].get(p["skin_type"], 1.0)
    g = p["response_factor"] * (1 - np.exp(-truth["k"] * n)) * factor * fade
    return n, g


def photo_truth(base: SkinTruth, g: float, truth: dict[str, Any], skin_type: str, rng: np.random.Generator) -> SkinTruth:
    """The skin at a visit with latent gain g: the baseline changed as PHOTO_EFFECTS say, plus
    visit-to-visit noise (the cohort's noise_cv for ratio metrics, INTERVAL_NOISE_SD otherwise)."""
    values = {"cielab_l": base.L, "cielab_a": base.a, "cielab_b": base.b, "spot_area": base.spot_fraction,
              "line_density": base.line_density, "roughness": base.roughness}
    for name, effect in PHOTO_EFFECTS.items():
        cohort = truth["metrics"][effect["follows"]]
        read = truth.get("read_strength", {}).get(effect["follows"], {}).get(skin_type, 1.0)
        if effect["scale"] == "ratio":
            values[name] *= (1 - cohort["emax_pct"] / 100 * g * read) * math.exp(rng.normal(0, cohort["noise_cv"]))
        else:
            values[name] += effect["emax_units"] * g * read
    for name, sd in INTERVAL_NOISE_SD.items():
        values[name] += rng.normal(0, sd)
    return SkinTruth(L=values["cielab_l"], a=values["cielab_a"], b=values["cielab_b"], spot_fraction=values["spot_area"],
                     line_density=values["line_density"], roughness=values["roughness"])


def _front_photos(cohort: Any):
    """The cohort's front photos (one row per photo id) of a tidy cohort."""
    from outcomes.simulation.parameters import PHOTO_METRICS

    pm = cohort.tables["photo_metrics"]
    camera = pm["metric"].astype(str).isin(PHOTO_METRICS)  # instrument readings share view "front"
    return pm[camera & (pm["view"].astype(str) == "front")].drop_duplicates("photo_id")


def photo_candidates(cohort: Any) -> list[str]:
    """The patients of a tidy cohort `simulate_photos` can choose from: two or more front photos, sorted."""
    front = _front_photos(cohort)
    counts = front.groupby(front["patient_id"].astype(str), observed=True).size()
    return sorted(counts.index[counts >= 2])


def simulate_photos(out_dir: str | Path, *, n_patients: int, seed: int, size: tuple[int, int] = (1600, 1200),
                    cohort: Any = None) -> Path:
    """Photos (front view, every photo visit) of `n_patients` face patients of `cohort` (default: a
    tidy cohort of max(60, 10·n_patients) patients simulated with `seed`), written into out_dir
    (absent or empty) as <patient>/<photo_id>.jpg with index.csv and photo_truth.csv.

    Capture conditions follow the cohort's photo rows: no chart where its color_delta_e is blank,
    blur where its blur > 0.5; light 2700-6500 K, exposure, small pose changes are drawn here.
    Same arguments, same bytes.
    """
    from outcomes.escaping import csv_cell, file_name_part
    from outcomes.simulation import refuse_unless_empty, simulate

    out = Path(out_dir)
    refuse_unless_empty(out)
    if cohort is None:
        cohort = simulate(max(60, 10 * n_patients), seed=seed, tidy=True)
    truth = cohort.truth
    front = _front_photos(cohort)
    eligible = photo_candidates(cohort)
    if len(eligible) < n_patients:
        raise ValueError(f"the cohort has {len(eligible)} patients with two or more front photos, fewer than {n_patients}")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(eligible, size=n_patients, replace=False).tolist())
    sessions = cohort.tables["sessions"]
    completed = sessions[sessions["status"].astype(str) == "completed"]
    index_rows, truth_rows = [], []
    made: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    try:
        for number, pid in enumerate(chosen):
            patient = truth["patients"][pid]
            prng = np.random.default_rng([seed, number])
            base = _baseline(prng, patient["skin_type"], patient["age"])
            photos = front[front["patient_id"].astype(str) == pid].sort_values("taken_at")
            days = photos["taken_at"].astype(str).to_numpy().astype("datetime64[D]")
            done = completed.loc[completed["patient_id"].astype(str) == pid, "session_date"].astype(str).to_numpy()
            n, g = visit_gain(truth, pid, done.astype("datetime64[D]"), days)
            folder = out / file_name_part(pid)
            folder.mkdir(exist_ok=True)
            texture_seed = int(prng.integers(2**31))
            for k, row in enumerate(photos.itertuples(index=False)):
                skin = photo_truth(base, float(g[k]), truth, patient["skin_type"], prng)
                w, h = size
                capture = Capture(
                    cct_k=float(prng.uniform(2700, 6500)), exposure=float(prng.uniform(0.85, 1.1)),
                    shift_px=(float(prng.uniform(-0.015, 0.015) * w), float(prng.uniform(-0.015, 0.015) * h)),
                    rotation_deg=float(prng.uniform(-2, 2)), scale=float(prng.uniform(0.97, 1.03)),
                    blur_sigma_px=float(1.5 + 3 * (row.blur - 0.5)) * h / 1200 if row.blur > 0.5 else 0.0,
                    chart=bool(np.isfinite(row.color_delta_e)), size=size, seed=int(prng.integers(2**31)))
                photo = render_photo(skin, capture, texture_seed)
                rel = f"{folder.name}/{file_name_part(row.photo_id)}.jpg"
                with open(out / rel, "xb") as fh:
                    made.append(out / rel)
                    fh.write(photo.jpeg)
                index_rows.append([pid, str(row.photo_id), str(row.taken_at), "front", rel,
                                   region_text(photo.skin_box)])
                truth_rows.append([pid, str(row.photo_id), str(row.taken_at), "front", rel, int(n[k]), round(float(g[k]), 6),
                                   round(capture.cct_k, 1), round(capture.exposure, 4), round(capture.blur_sigma_px, 3),
                                   "yes" if capture.chart else "no", texture_seed, *(round(v, 4) for v in (
                                       skin.L, skin.a, skin.b, skin.ita, skin.spot_fraction, skin.line_density,
                                       skin.roughness))])
        for name, columns, rows in (("photo_truth.csv", TRUTH_COLUMNS, truth_rows), ("index.csv", INDEX_COLUMNS, index_rows)):
            with open(out / name, "x", newline="", encoding="utf-8") as fh:
                made.append(out / name)
                writer = csv.writer(fh)
                writer.writerow(columns)
                writer.writerows([[csv_cell(v) for v in r] for r in rows])
    except BaseException:
        for path in made:
            path.unlink(missing_ok=True)
        for folder in sorted(p for p in out.iterdir() if p.is_dir()):
            if not any(folder.iterdir()):
                folder.rmdir()
        raise
    return out
