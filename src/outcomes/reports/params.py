"""Report parameters: read them from the command line, check them against the notebook.

A typo in a scheduled run should fail in a second with a clear message, not after ten
minutes of modelling with the default silently used. So every parameter is checked against
the ones the notebook declares in its cell tagged ``parameters`` (papermill's inspect)
before anything runs: unknown names are refused (with a suggestion), values are converted
to the declared type (annotation, else the type of the default) or refused; a list parameter
(``metrics: list[str] = [...]``) takes a list, or comma-separated text from the command line,
and each item is converted to the item type. A ``min_cell`` below 5 is refused too: the cover
of every report says groups under 5 patients are hidden.
"""
from __future__ import annotations

import ast
import difflib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from typer.core import TyperCommand

TRUE_WORDS = {"true", "yes", "y", "1", "on"}
FALSE_WORDS = {"false", "no", "n", "0", "off"}


class ParameterError(ValueError):
    """A report cannot run as asked (unknown parameter, wrong type, bad grid file)."""


def join_param_pairs(args: Sequence[str]) -> list[str]:
    """Rewrite papermill's ``-p name value`` into ``-p name=value`` (``name=value`` passes as is)."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-p", "--param") and i + 2 < len(args) and "=" not in args[i + 1]:
            out += [arg, f"{args[i + 1]}={args[i + 2]}"]
            i += 3
            continue
        out.append(arg)
        i += 1
    return out


class PapermillStyleCommand(TyperCommand):
    """A typer command that also accepts papermill's two-word ``-p name value`` form."""

    def parse_args(self, ctx, args):  # noqa: D102 - click's hook
        return super().parse_args(ctx, join_param_pairs(args))


def parse_cli_params(items: Sequence[str]) -> dict[str, str]:
    """``["metric=hydration", "min_sessions=3"]`` -> a dict of raw strings (types come later)."""
    params: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ParameterError(f"parameter {item!r}: write it as -p name=value or -p name value")
        if name in params:
            raise ParameterError(f"parameter {name!r} is given twice")
        params[name] = value
    return params


def declared_parameters(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """The notebook's parameters as papermill sees them: name -> {type, default, help}."""
    import nbformat
    import papermill

    from outcomes import config

    try:
        nb = nbformat.read(str(notebook), as_version=4)
    except OSError as exc:
        raise ParameterError(f"{notebook}: cannot read it ({exc.strerror or exc})") from None
    except Exception:  # noqa: BLE001 - its error message quotes the file's bytes; name the file only
        raise ParameterError(f"{notebook} is not a Jupyter notebook (.ipynb)") from None
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ParameterError(f"{notebook}: no cell tagged 'parameters', so it cannot be run as a report")
    # papermill's public inspect_notebook reads a file and needs a kernel name and a language to
    # parse the cell: a notebook without them gets ours (reports always run on our kernel), and
    # a copy is inspected, so the notebook's own path is never read as a papermill path template
    spec = nb.metadata.setdefault("kernelspec", {})
    spec.setdefault("name", config.KERNEL_NAME)
    if not nb.metadata.get("language_info", {}).get("name"):
        spec.setdefault("language", "python")
    with tempfile.TemporaryDirectory(prefix="outcomes-params-") as tmp:
        copy = Path(tmp) / "notebook.ipynb"
        nbformat.write(nb, str(copy))
        found = papermill.inspect_notebook(str(copy))
    declared = {}
    for name, info in found.items():
        kind = info.get("inferred_type_name") or "None"
        default = info.get("default")
        if kind == "None":
            try:
                value = ast.literal_eval(default) if default is not None else None
            except (ValueError, SyntaxError):
                value = None
            kind = type(value).__name__ if value is not None else "any"
        declared[name] = {"type": kind, "default": default, "help": info.get("help", "")}
    return declared


def _convert(name: str, kind: str, value: Any, where: str) -> Any:
    """Value in the declared type, or a ParameterError saying what was expected."""
    def refuse() -> ParameterError:
        return ParameterError(
            f"{where}: parameter {name!r} expects {kind}, got {type(value).__name__} {value!r}"
        )

    if kind == "list" or kind.startswith("list["):  # list[str] = [...] in the parameters cell
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise refuse()
        return [_convert(name, kind[5:-1].strip() or "any", v, where) for v in items]
    if kind == "any" or kind not in {"str", "int", "float", "bool"}:
        return value
    if isinstance(value, str) and kind != "str":
        text = value.strip()
        if kind == "bool":
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
            raise refuse()
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise refuse() from None
    if kind == "str":
        if isinstance(value, str):
            return value
        raise refuse()
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise refuse()
    if isinstance(value, bool):
        raise refuse()
    if kind == "int":
        if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        raise refuse()
    if isinstance(value, (int, float)):  # float
        return float(value)
    raise refuse()


def check_parameters(notebook: str | Path, given: Mapping[str, Any], where: str | None = None) -> dict[str, Any]:
    """`given` converted to the notebook's declared types; refuses unknown names and bad values."""
    where = where or Path(notebook).name
    declared = declared_parameters(notebook)
    unknown = [n for n in given if n not in declared]
    if unknown:
        hints = []
        for n in unknown:
            close = difflib.get_close_matches(n, list(declared), n=1)
            hints.append(f"{n!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ParameterError(
            f"{where}: unknown parameter {', '.join(hints)}; "
            f"{Path(notebook).name} takes: {', '.join(declared) or 'no parameters'}"
        )
    checked = {n: _convert(n, declared[n]["type"], v, where) for n, v in given.items()}
    if "min_cell" in checked:
        from outcomes import privacy

        try:
            privacy.check_min_cell(checked["min_cell"])
        except ValueError as exc:
            raise ParameterError(f"{where}: {exc}") from None
    return checked
