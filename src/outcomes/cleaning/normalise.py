"""Normalisers: one messy cell in, a contract value (or unknown) plus a reason out.

Why pure functions that never raise: any text a clinic export can hold must end up either
as a contract value or as "unknown" with a reason the user can read in rejected.csv or
data_quality.csv. Whether an unknown value rejects the row is decided by the table cleaner,
not here. `normalise_column` applies one of them to a whole column by normalising each
*distinct* value once, which keeps cleaning millions of rows fast.
"""
from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from outcomes import contract

OK = ""  # the reason of a value that normalised fine
YEAR_RANGE = (1900, 2100)  # dates outside are implausible (typos such as 0205 or 2205)


class Normalised(NamedTuple):
    value: Any  # a contract value, or None when unknown/missing
    reason: str  # OK, "missing", or why the value is unknown


# --- helpers ------------------------------------------------------------------
_NULLS = frozenset(t.lower() for t in contract.missing_text_spellings())


def text(raw: Any) -> str | None:
    """Trimmed text of a cell, or None for blank/NA."""
    if raw is None:
        return None
    if isinstance(raw, float) and math.isnan(raw):
        return None
    if raw is pd.NA or raw is pd.NaT:
        return None
    try:
        value = str(raw).replace("\ufeff", "").strip()
    except Exception:  # pragma: no cover - exotic objects
        return None
    return None if value.lower() in _NULLS else value


def _key(value: str) -> str:
    """Lower case, runs of spaces/hyphens/underscores/dots to one underscore."""
    return re.sub(r"[\s\-_./]+", "_", value.lower()).strip("_")


def _lookup(raw: Any, table: dict[str, str], what: str, default: Any = None) -> Normalised:
    value = text(raw)
    if value is None:
        return Normalised(default, "missing")
    found = table.get(_key(value))
    if found is None:
        return Normalised(None, f"unrecognised_{what}")
    return Normalised(found, OK)


def _vocab(pairs: dict[str, tuple[str, ...]]) -> dict[str, str]:
    table = {}
    for target, variants in pairs.items():
        for variant in (target, *variants):
            table[_key(variant)] = target
    return table


# --- Fitzpatrick skin type ------------------------------------------------------
_ROMAN = {"i": "I", "ii": "II", "iii": "III", "iv": "IV", "v": "V", "vi": "VI"}
_SKIN_PREFIX = re.compile(
    r"^(?:fitzpatrick|fitz|fst|fpt|skin\s*type|skintype|phototype|photo\s*type|type|typ|ft)"
    r"(?:\s*(?:skin\s*)?type)?[\s\-_:#.]*",
    re.IGNORECASE,
)


def skin_type(raw: Any) -> Normalised:
    """`III`, `iii`, `3`, `type 3`, `Type III`, `Fitzpatrick 3`, `FST-3`, `3.0` -> `III`."""
    if isinstance(raw, (int, float, np.integer, np.floating)) and not isinstance(raw, bool):
        if isinstance(raw, (float, np.floating)) and math.isnan(raw):
            return Normalised(None, "missing")
        if float(raw).is_integer() and 1 <= raw <= 6:
            return Normalised(contract.SKIN_TYPES[int(raw) - 1], OK)
        return Normalised(None, "unrecognised_skin_type")
    value = text(raw)
    if value is None:
        return Normalised(None, "missing")
    rest = _SKIN_PREFIX.sub("", value).strip().lower()
    if rest in _ROMAN:
        return Normalised(_ROMAN[rest], OK)
    match = re.fullmatch(r"([1-6])(?:[.,]0+)?", rest, flags=re.ASCII)
    if match:
        return Normalised(contract.SKIN_TYPES[int(match.group(1)) - 1], OK)
    return Normalised(None, "unrecognised_skin_type")


# --- sex -------------------------------------------------------------------------
_SEX = _vocab({
    "F": ("f", "female", "woman", "women", "w", "fem", "girl", "lady"),
    "M": ("m", "male", "man", "men", "masc", "boy"),
    "X": ("x", "other", "diverse", "divers", "d", "non-binary", "nonbinary", "non binary", "nb", "intersex"),
    "unknown": ("unknown", "u", "unk", "not stated", "not known", "prefer not to say", "undisclosed"),
})


def sex(raw: Any) -> Normalised:
    """`F`/`female`/`woman` -> F, `M`/`male` -> M, `X` -> X; blank or anything else -> unknown."""
    found = _lookup(raw, _SEX, "sex", default="unknown")
    return found if found.value is not None else Normalised("unknown", found.reason)


# --- concern -----------------------------------------------------------------------
_CONCERN = _vocab({
    "fine_lines": ("fine lines", "fine line", "finelines", "wrinkles", "wrinkle", "lines", "crows feet",
                   "crow's feet", "anti aging", "anti-ageing", "anti ageing", "ageing", "aging"),
    "skin_quality": ("skin quality", "quality", "rejuvenation", "skin rejuvenation", "hydration", "dull skin",
                     "dullness", "glow", "texture", "skin booster", "skinbooster", "dehydration"),
    "pigmentation": ("pigmentation", "melasma", "hyperpigmentation", "hyper pigmentation", "dark spots",
                     "brown spots", "pigment", "spots", "chloasma"),
    "acne_scars": ("acne scars", "acne scar", "acne scarring", "scars", "scar", "acne"),
    "hair_loss": ("hair loss", "hairloss", "alopecia", "hair thinning", "thinning hair"),
    "cellulite": ("cellulite", "cellulitis"),
    "localized_fat": ("localized fat", "localised fat", "local fat", "fat", "lipolysis", "fat reduction",
                      "stubborn fat"),
})


def concern(raw: Any) -> Normalised:
    """`Fine lines`, `wrinkles` -> fine_lines; `melasma` -> pigmentation; ... ; else unknown."""
    return _lookup(raw, _CONCERN, "concern")


# --- yes/no --------------------------------------------------------------------------
_YES = {"yes", "y", "true", "t", "1", "x", "ja", "j", "oui", "si", "sí", "on", "1_0", "checked"}
_NO = {"no", "n", "false", "f", "0", "nein", "non", "off", "0_0", "unchecked", "without", "none_worn"}


def yes_no(raw: Any) -> Normalised:
    """`yes`/`y`/`true`/`1` -> True, `no`/`n`/`false`/`0` -> False; blank -> None (not recorded)."""
    if isinstance(raw, (bool, np.bool_)):
        return Normalised(bool(raw), OK)
    if isinstance(raw, (int, float, np.integer, np.floating)):
        if isinstance(raw, (float, np.floating)) and math.isnan(raw):
            return Normalised(None, "missing")
        if raw in (0, 1):
            return Normalised(bool(raw), OK)
        return Normalised(None, "unrecognised_yes_no")
    value = text(raw)
    if value is None:
        return Normalised(None, "missing")
    key = _key(value)
    if key in _YES:
        return Normalised(True, OK)
    if key in _NO:
        return Normalised(False, OK)
    return Normalised(None, "unrecognised_yes_no")


# --- metric names, views ---------------------------------------------------------------
def metric_name(raw: Any, registry: dict[str, Any] | None = None) -> Normalised:
    """`Brown Spots`, `brown-spots`, ` BROWN_SPOTS ` -> brown_spots, if in the registry."""
    names = contract.METRICS if registry is None else registry
    value = text(raw)
    if value is None:
        return Normalised(None, "missing")
    key = _key(value)
    if key in names:
        return Normalised(key, OK)
    squashed = {k.replace("_", ""): k for k in names}
    if key.replace("_", "") in squashed:
        return Normalised(squashed[key.replace("_", "")], OK)
    return Normalised(None, "unknown_metric")


_VIEW = {
    "front": "front", "frontal": "front", "face": "front", "f": "front", "centre": "front",
    "center": "front", "straight": "front", "0": "front",
}
for _side, _short in (("left", "l"), ("right", "r")):
    for _angle in ("45", "90"):
        for _form in (f"{_side}{_angle}", f"{_short}{_angle}", f"{_side}{_angle}deg", f"{_angle}{_side}",
                      f"{_side}oblique" if _angle == "45" else f"{_side}profile",
                      f"{_side}lateral" if _angle == "90" else f"{_side}{_angle}degrees"):
            _VIEW[_form] = f"{_side}{_angle}"


def view(raw: Any) -> Normalised:
    """`front` (default when blank), `left45`, `right45`, `left90`, `right90`; `Left 45°` -> left45."""
    value = text(raw)
    if value is None:
        return Normalised(contract.DEFAULT_VIEW, OK)
    key = re.sub(r"[\s\-_°.]+|degrees?$", "", value.lower())
    found = _VIEW.get(key)
    return Normalised(found, OK) if found else Normalised(None, "unknown_view")


# --- sessions, assessments, adverse events ---------------------------------------------------
_STATUS = _vocab({
    "completed": ("complete", "done", "attended", "performed", "treated", "ok", "yes"),
    "cancelled": ("canceled", "cancel", "cancelled by patient", "cancelled by clinic", "rescheduled"),
    "no_show": ("no show", "noshow", "no-show", "dna", "did not attend", "missed", "absent"),
})


def session_status(raw: Any) -> Normalised:
    """completed (default when blank), cancelled, no_show; else unknown."""
    found = _lookup(raw, _STATUS, "status")
    if found.reason == "missing":
        return Normalised("completed", OK)
    return Normalised(None, "unknown_status") if found.value is None else found


_SCALE = _vocab({
    "gais": ("global aesthetic improvement scale", "global aesthetic improvement", "gais score"),
    "wsrs": ("wrinkle severity rating scale", "wrinkle severity", "wsrs score"),
    "satisfaction": ("patient satisfaction", "satisfaction score", "sat", "satisfaction_pct"),
})


def scale(raw: Any) -> Normalised:
    """gais, wsrs, satisfaction (case and spelling variants); else unknown."""
    found = _lookup(raw, _SCALE, "scale")
    return Normalised(None, "unknown_scale") if found.value is None and found.reason != "missing" else found


_RATER = _vocab({
    "clinician": ("doctor", "physician", "investigator", "practitioner", "dr", "md", "nurse", "rater",
                  "blinded rater", "evaluator", "assessor"),
    "patient": ("subject", "self", "participant", "client"),
})


def rater(raw: Any) -> Normalised:
    """clinician or patient; blank or anything else -> unknown."""
    return _lookup(raw, _RATER, "rater")


_EVENT = _vocab({
    "erythema": ("redness", "red", "flushing"),
    "edema": ("oedema", "swelling", "swollen", "odema"),
    "bruising": ("bruise", "bruises", "hematoma", "haematoma", "ecchymosis"),
    "pain": ("tenderness", "discomfort", "burning", "sore", "soreness"),
    "nodule": ("nodules", "papule", "papules", "lump", "lumps", "granuloma"),
    "pih": ("post inflammatory hyperpigmentation", "post-inflammatory hyperpigmentation",
            "hyperpigmentation", "pigmentation"),
    "infection": ("infected", "abscess"),
    "other": ("others", "misc"),
})


def event(raw: Any) -> Normalised:
    """erythema, edema, bruising, pain, nodule, pih, infection, other; else unknown."""
    found = _lookup(raw, _EVENT, "event")
    return Normalised(None, "unknown_event") if found.value is None and found.reason != "missing" else found


_SEVERITY = _vocab({
    "mild": ("1", "low", "minor", "grade 1"),
    "moderate": ("2", "medium", "grade 2", "mod"),
    "severe": ("3", "high", "serious", "grade 3"),
})


def severity(raw: Any) -> Normalised:
    """mild, moderate, severe (1/2/3 accepted); blank or anything else -> unknown."""
    if isinstance(raw, (int, float, np.integer, np.floating)) and not isinstance(raw, bool):
        if isinstance(raw, (float, np.floating)) and math.isnan(raw):
            return Normalised(None, "missing")
        raw = str(int(raw)) if float(raw).is_integer() else str(raw)
    return _lookup(raw, _SEVERITY, "severity")


# --- numbers -------------------------------------------------------------------------
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def number(raw: Any, decimal_comma: bool = False) -> Normalised:
    """A finite float from a number or text (`12.5`; `12,5` when decimal_comma); else a reason."""
    if isinstance(raw, (bool, np.bool_)):
        return Normalised(None, "not_a_number")
    if isinstance(raw, (int, float, np.integer, np.floating)):
        value = float(raw)
        if math.isnan(value):
            return Normalised(None, "missing")
        return Normalised(value, OK) if math.isfinite(value) else Normalised(None, "not_a_number")
    value = text(raw)
    if value is None:
        return Normalised(None, "missing")
    if decimal_comma:
        value = value.replace(",", ".")
    if not _NUMBER.fullmatch(value):
        return Normalised(None, "not_a_number")
    result = float(value)
    return Normalised(result, OK) if math.isfinite(result) else Normalised(None, "not_a_number")


# --- dates ---------------------------------------------------------------------------
_ISO = re.compile(
    r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"
    r"(?:[T\s]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}:?\d{2}|UTC)?)?",
    re.ASCII,
)
_LOCAL = re.compile(
    r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4}|\d{2})"
    r"(?:[T\s,]+(\d{1,2})[:.h](\d{2})(?::(\d{2}))?\s*([aApP][mM])?)?",
    re.ASCII,
)


def parse_date(raw: Any, monthfirst: bool = False) -> Normalised:
    """ISO `2025-03-04`, `2025-03-04 10:30`, `2025-03-04T10:30:00Z`, or `04/03/2025` (day first
    unless monthfirst) -> pandas Timestamp (naive, time kept). Unknown -> None with a reason."""
    if isinstance(raw, (pd.Timestamp, datetime, np.datetime64)):
        try:
            stamp = pd.Timestamp(raw)
        except (ValueError, OverflowError):
            return Normalised(None, "unparseable_date")
        if stamp is pd.NaT:
            return Normalised(None, "missing")
        stamp = stamp.tz_convert(None) if stamp.tzinfo is not None else stamp
        return _plausible(stamp)
    value = text(raw)
    if value is None:
        return Normalised(None, "missing")
    match = _ISO.fullmatch(value)
    if match:
        year, month, day = int(match.group(1)), int(match.group(2)), int(match.group(3))
        hour, minute, second = (int(match.group(i) or 0) for i in (4, 5, 6))
        return _build(year, month, day, hour, minute, second)
    match = _LOCAL.fullmatch(value)
    if match:
        first, second_part, year_text = int(match.group(1)), int(match.group(2)), match.group(3)
        year = int(year_text) + (2000 if len(year_text) == 2 else 0)
        day, month = (second_part, first) if monthfirst else (first, second_part)
        hour, minute, sec = (int(match.group(i) or 0) for i in (4, 5, 6))
        ampm = (match.group(7) or "").lower()
        if ampm:
            if not 1 <= hour <= 12:
                return Normalised(None, "unparseable_date")
            hour = hour % 12 + (12 if ampm == "pm" else 0)
        result = _build(year, month, day, hour, minute, sec)
        if result.value is None and result.reason == "unparseable_date" and 1 <= day <= 12 < month <= 31:
            hint = "read month-first; without --monthfirst?" if monthfirst else "read day-first; --monthfirst?"
            return Normalised(None, f"unparseable_date (month > 12 when {hint})")
        return result
    return Normalised(None, "unparseable_date")


def _build(year: int, month: int, day: int, hour: int, minute: int, second: int) -> Normalised:
    try:
        stamp = pd.Timestamp(datetime(year, month, day, hour, minute, second))
    except (ValueError, OverflowError):
        return Normalised(None, "unparseable_date")
    return _plausible(stamp)


def _plausible(stamp: pd.Timestamp) -> Normalised:
    if not YEAR_RANGE[0] <= stamp.year <= YEAR_RANGE[1]:
        return Normalised(None, "implausible_date")
    return Normalised(stamp, OK)


# --- whole columns ----------------------------------------------------------------------
class Column(NamedTuple):
    values: np.ndarray | pd.Series  # one normalised value per row (None/NaN/NaT when unknown)
    reasons: pd.Categorical  # one reason per row ("" when fine)


def normalise_column(series: pd.Series, func: Callable[..., Normalised], categories: list | None = None,
                     dtype: type | None = None, **kwargs: Any) -> Column:
    """Apply a per-value normaliser to a column, calling it once per distinct value.

    With `categories`, values come back as a pandas Categorical, with `dtype` (float) as a numpy
    array (NaN when unknown): both fast for big tables.
    """
    codes, uniques = factorize(series)
    uniques = uniques.to_pylist() if isinstance(uniques, pa.Array) else uniques
    results = [func(u, **kwargs) for u in uniques] + [func(None, **kwargs)]
    reasons = _reasons(codes, [r.reason for r in results])
    if categories is not None:
        position = {c: i for i, c in enumerate(categories)}
        per_unique = np.array([-1 if r.value is None else position.get(r.value, -1) for r in results],
                              dtype=narrowest_int(len(categories)))
        return Column(pd.Categorical.from_codes(per_unique[codes], categories=categories, validate=False), reasons)
    if dtype is float:
        return Column(np.array([np.nan if r.value is None else r.value for r in results], dtype=float)[codes], reasons)
    values = np.empty(len(results), dtype=object)
    values[:] = [r.value for r in results]
    return Column(values[codes], reasons)


def factorize(series: pd.Series) -> tuple[np.ndarray, list | pa.Array]:
    """Integer code per row (-1 for NA) and the distinct values (an arrow array for text columns,
    hashed by arrow: fast; else a list). A categorical (how CSV text is read) is already factorised."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes, categories = np.asarray(series.cat.codes), series.cat.categories
        if pd.api.types.is_string_dtype(categories.dtype) and hasattr(categories.array, "__arrow_array__"):
            uniques = categories.array.__arrow_array__()
            return codes, uniques.combine_chunks() if isinstance(uniques, pa.ChunkedArray) else uniques
        return codes, list(categories)
    array = getattr(series.array, "__arrow_array__", None)
    if array is None or not pd.api.types.is_string_dtype(series.dtype):
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        return codes, list(uniques)
    encoded = pc.dictionary_encode(array())  # chunks share one dictionary
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    if not chunks:
        return np.zeros(0, dtype=np.int64), pa.array([], type=pa.large_string())
    indices = pa.chunked_array([c.indices for c in chunks], type=chunks[0].indices.type)
    codes = indices.fill_null(-1).to_numpy().astype(np.int64, copy=False)
    return codes, chunks[0].dictionary


def _text_uniques(series: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """factorize, with the distinct values as arrow text (numbers written as text)."""
    if pd.api.types.is_float_dtype(series.dtype):
        as_int = series.dropna()
        if (as_int == np.floor(as_int)).all():  # ids from Excel: 123.0 -> "123"
            series = series.astype("Int64")
    codes, uniques = factorize(series)
    if not isinstance(uniques, pa.Array):
        uniques = pa.array([str(u) for u in uniques], type=pa.large_string())
    elif not pa.types.is_large_string(uniques.type):
        uniques = uniques.cast(pa.large_string())
    return codes, uniques


class Texts(NamedTuple):
    """A free-text column as codes into its distinct trimmed texts (-1 = blank)."""

    codes: np.ndarray
    uniques: pa.Array  # large_string, distinct, none blank

    def dictionary(self, rows: np.ndarray | None = None) -> pa.DictionaryArray:
        """The texts (of `rows`) as an arrow dictionary array: nothing is copied per row."""
        codes = self.codes if rows is None else self.codes[rows]
        return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32, copy=False), mask=codes < 0), self.uniques)

    def strings(self) -> pd.Series:
        """The texts as a pandas `str` column."""
        return pd.Series(pd.array(self.dictionary().cast(pa.large_string()), dtype="str"))


def texts(series: pd.Series) -> Texts:
    """Trimmed text, blank or a missing-value text -> NA, normalised once per distinct cell."""
    codes, uniques = _text_uniques(series)
    trimmed = _trimmed_or_null(uniques)
    encoded = pc.dictionary_encode(trimmed)  # trimming can make two cells equal
    remap = np.append(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32), np.int32(-1))
    return Texts(remap[codes], encoded.dictionary)


def dense_texts(series: pd.Series) -> pa.Array:
    """Trimmed text, blank or a missing-value text -> null, as one arrow array: for columns with
    about one distinct value per row (photo ids), where looking up each distinct value would not pay."""
    array = getattr(series.array, "__arrow_array__", None)
    if array is None or isinstance(series.dtype, pd.CategoricalDtype) or not pd.api.types.is_string_dtype(series.dtype):
        return texts(series).dictionary().cast(pa.large_string())
    values = array()
    if isinstance(values, pa.ChunkedArray):  # (combining a single chunk would copy it)
        values = values.chunk(0) if values.num_chunks == 1 else values.combine_chunks()
    return _trimmed_or_null(values)


def _trimmed_or_null(values: pa.Array) -> pa.Array:
    """Trimmed texts; null where blank or a missing-value text (contract.MISSING_TEXTS)."""
    trimmed = pc.utf8_trim_whitespace(values)
    missing = pc.is_in(pc.utf8_lower(trimmed), value_set=pa.array(sorted(_NULLS), trimmed.type))
    return pc.if_else(missing, pa.scalar(None, trimmed.type), trimmed)


def has_reason(reasons: pd.Categorical, *wanted: str) -> np.ndarray:
    """Boolean mask of the rows whose reason is one of `wanted` (via codes: fast on big tables)."""
    codes = np.asarray(reasons.codes)
    mask = np.zeros(len(codes), dtype=bool)
    for code in (i for i, c in enumerate(reasons.categories) if c in wanted):  # a few: one comparison each
        mask |= codes == code  # (np.isin would compare in int64: thirty times slower on int8 codes)
    return mask


def _reasons(codes: np.ndarray, per_unique: list[str]) -> pd.Categorical:
    """Per row, the reason of its distinct value, as a categorical with sorted categories (the
    distinct values are hashed; only the few reasons are sorted)."""
    inverse, found = pd.factorize(np.asarray(per_unique, dtype=object))
    found = found.astype(str)
    order = np.argsort(found)
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    inverse = rank[inverse].astype(narrowest_int(len(found)))
    return pd.Categorical.from_codes(inverse[codes], categories=list(found[order]), validate=False)


def narrowest_int(n: int) -> type:
    """The smallest signed integer type holding codes 0..n-1 and -1 (the one rule for codes into n
    distinct values; pandas categoricals narrow their own codes)."""
    return np.int8 if n < 1 << 7 else np.int16 if n < 1 << 15 else np.int32 if n < 1 << 31 else np.int64


def numbers(series: pd.Series, decimal_comma: bool = False) -> Column:
    """Float column with reasons (`missing`, `not_a_number`): `number` once per distinct text
    (typed numbers, from parquet or Excel, are taken as they are)."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=float, na_value=np.nan)
        reasons = np.where(np.isnan(values), 1, np.where(np.isfinite(values), 0, 2))
        return Column(values, pd.Categorical.from_codes(reasons, categories=[OK, "missing", "not_a_number"]))
    return normalise_column(series.astype(object) if pd.api.types.is_bool_dtype(series.dtype) else series, number,
                            dtype=float, decimal_comma=decimal_comma)


# ISO texts are parsed by arrow first, the rest by parse_date: on the benchmark registry's 140,936
# distinct taken_at texts 0.06 s, against 0.74 s for parse_date on each (a seventh of a whole clean)
_FAST_DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M")


def dates(series: pd.Series, monthfirst: bool = False, until: np.datetime64 | None = None) -> Column:
    """datetime64[ns] column with reasons, parsing each distinct text once (ISO fast path).

    ``until``: for dates of events (not birth dates), the export's day: an event before
    contract.EARLIEST_EVENT_DATE or after that day gets its reason and no value, like a typo."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        values = series.dt.tz_convert(None) if getattr(series.dt, "tz", None) is not None else series
        values = pd.to_datetime(values).to_numpy(dtype="datetime64[ns]")
        years = pd.DatetimeIndex(values).year
        missing = np.isnat(values)
        implausible = ~missing & ((years < YEAR_RANGE[0]) | (years > YEAR_RANGE[1]))
        early, late = _outside_events(values, until)
        values = np.where(implausible | early | late, np.datetime64("NaT"), values)
        codes = np.select([missing, implausible, early, late], [1, 2, 3, 4], 0)
        return Column(values, pd.Categorical.from_codes(codes, categories=[
            OK, "missing", "implausible_date", contract.EARLY_EVENT_REASON, contract.LATE_EVENT_REASON]))
    codes, uniques = _text_uniques(series)
    uniq = pc.utf8_trim_whitespace(uniques)
    parsed = pa.nulls(len(uniq), pa.timestamp("s"))
    for fmt in _FAST_DATE_FORMATS:
        parsed = pc.coalesce(parsed, pc.strptime(uniq, format=fmt, unit="s", error_is_null=True))
    stamps = parsed.to_numpy(zero_copy_only=False).astype("datetime64[ns]")
    reasons = [OK] * len(uniq)
    years = stamps.astype("datetime64[Y]").astype(np.int64) + 1970
    for i in np.flatnonzero(np.isnat(stamps) | (years < YEAR_RANGE[0]) | (years > YEAR_RANGE[1])):
        result = parse_date(uniq[i].as_py(), monthfirst=monthfirst)
        stamps[i] = np.datetime64("NaT") if result.value is None else result.value.to_datetime64()
        reasons[i] = result.reason
    early, late = _outside_events(stamps, until)  # per distinct date: cheap on millions of rows
    if early.any() or late.any():
        reasons = np.array(reasons, dtype=object)
        reasons[early], reasons[late] = contract.EARLY_EVENT_REASON, contract.LATE_EVENT_REASON
        stamps[early | late] = np.datetime64("NaT")
        reasons = reasons.tolist()
    stamps = np.append(stamps, np.datetime64("NaT", "ns"))
    return Column(stamps[codes], _reasons(codes, reasons + ["missing"]))


def _outside_events(stamps: np.ndarray, until: np.datetime64 | None) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the event dates before contract.EARLIEST_EVENT_DATE and after the day ``until``
    (none when ``until`` is None; NaT is neither)."""
    if until is None:
        return np.zeros(len(stamps), dtype=bool), np.zeros(len(stamps), dtype=bool)
    day = stamps.astype("datetime64[D]")
    return day < np.datetime64(contract.EARLIEST_EVENT_DATE, "D"), day > np.datetime64(until, "D")
