"""Write weft pipeline steps in Python.

A step is a function of its params. It reads its inputs, writes its outputs
and logs what it measured::

    import weft_step as weft

    @weft.step
    def clean(params):                      # params: a dict (or a dataclass)
        rows = weft.read_csv("raw")         # /inputs/raw
        kept = [r for r in rows if r["quality"]]
        weft.write_csv("clean", kept)       # /outputs/clean
        weft.log_metric("rows", len(kept))

Build it with ``weft build`` (the manifest names the folder holding
``app.py`` as ``python = "steps/clean"``); weft turns it into a WebAssembly
component with componentize-py.

The sandbox: inputs are read-only under ``/inputs/<name>``, outputs are
written under ``/outputs/<name>`` (every declared output must exist when the
step returns), ``/tmp`` is scratch space, and ``print`` goes to the step's
logs. There is no environment, no network and no other path.

Params arrive as a dict. Annotate the parameter with a dataclass to get one
instead: a missing or unknown field fails the step as ``invalid-params``.
An exception fails the step with its type and message (the traceback goes
to the logs); raise :class:`InvalidParams` to say the params are wrong.
"""

import csv
import dataclasses
import io
import json
import os
import sys
import traceback
import typing

# The component's imports, bound when componentize-py builds the step
# (modules must be imported at build time to be in the component). Outside
# a component (plain Python, tests) the tracker calls fail with a clear error.
try:
    from componentize_py_types import Err as _Err
    from wit_world.imports import tracker as _wit_tracker
    from wit_world.imports.types import StepError_Failed as _Failed
    from wit_world.imports.types import StepError_InvalidParams as _InvalidParams
except ImportError:  # pragma: no cover - only inside a component
    _wit_tracker = None

__all__ = [
    "step",
    "InvalidParams",
    "input_path",
    "output_path",
    "read_input_bytes",
    "read_input_text",
    "read_json",
    "read_csv",
    "write_output",
    "write_json",
    "write_csv",
    "create_output_dir",
    "log_metric",
    "log_param",
    "set_tag",
    "log_metadata",
]

INPUTS = "/inputs"
OUTPUTS = "/outputs"


class InvalidParams(Exception):
    """The params (or inputs) are not what the step accepts; retrying will
    not help."""


def _name(name):
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"'{name}' is not an input or output name")
    return name


def input_path(name):
    """Where input ``name`` is (a file or a directory)."""
    return os.path.join(INPUTS, _name(name))


def output_path(name):
    """Where to write output ``name``."""
    return os.path.join(OUTPUTS, _name(name))


def read_input_bytes(name):
    with open(input_path(name), "rb") as f:
        return f.read()


def read_input_text(name):
    with open(input_path(name), encoding="utf-8") as f:
        return f.read()


def read_json(name):
    return json.loads(read_input_text(name))


def read_csv(name, convert=True):
    """Rows of a CSV input as dicts keyed by the header. With ``convert``,
    cells that parse as numbers become ints or floats."""
    with open(input_path(name), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if convert:
        rows = [{k: _number(v) for k, v in row.items()} for row in rows]
    return rows


def _number(text):
    if text is None:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def write_output(name, data):
    """Writes ``data`` (str or bytes) as output ``name``."""
    mode = "wb" if isinstance(data, (bytes, bytearray)) else "w"
    with open(output_path(name), mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
        f.write(data)


def write_json(name, value):
    write_output(name, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_csv(name, rows, fieldnames=None):
    """Writes dicts as CSV (header from ``fieldnames`` or the first row)."""
    rows = list(rows)
    if fieldnames is None:
        fieldnames = list(rows[0].keys()) if rows else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_output(name, buffer.getvalue())


def create_output_dir(name):
    """Creates output ``name`` as a directory and returns its path."""
    path = output_path(name)
    os.makedirs(path, exist_ok=True)
    return path


def _tracker():
    if _wit_tracker is None:
        raise RuntimeError("the weft tracker is only there inside a step component (build it with `weft build`)")
    return _wit_tracker


def log_metric(key, value, step=None):
    """Logs a metric value; ``step`` orders a history (an epoch)."""
    _tracker().log_metric(key, float(value), None if step is None else int(step))


def log_param(key, value):
    _tracker().log_param(key, str(value))


def set_tag(key, value):
    _tracker().set_tag(key, str(value))


def log_metadata(key, value):
    """Attaches a JSON document (any JSON-serialisable value)."""
    _tracker().log_metadata(key, json.dumps(value))


def _params_for(func, params):
    """The params as the function wants them: a dict, or the dataclass its
    first parameter is annotated with."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        hints = {}
    names = func.__code__.co_varnames[: func.__code__.co_argcount]
    wanted = hints.get(names[0]) if names else None
    if wanted is not None and dataclasses.is_dataclass(wanted):
        try:
            return wanted(**params)
        except TypeError as e:
            raise InvalidParams(f"params do not fit {wanted.__name__}: {e}") from None
    return params


def step(func):
    """Makes ``func(params)`` the step this component runs. Use it once, in
    the component's ``app`` module."""
    class WitWorld:
        def run(self, params: str) -> None:
            try:
                value = json.loads(params)
                if not isinstance(value, dict):
                    raise InvalidParams("params must be a JSON object")
                func(_params_for(func, value))
            except InvalidParams as e:
                raise _Err(_InvalidParams(str(e)))
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                raise _Err(_Failed(f"{type(e).__name__}: {e}"))

    # componentize-py looks for the class in the app module.
    sys.modules[func.__module__].WitWorld = WitWorld
    return func
