"""Discovering methods: every module in :mod:`aar.w2s.methods` that defines ``NAME`` and ``run``,
plus user method files loaded by path."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from pathlib import Path
from types import ModuleType

from aar.w2s.methods.base import Method, MethodError

_SKIP = {"base", "registry", "common"}


def _from_module(mod: ModuleType, source: str) -> Method:
    name = getattr(mod, "NAME", None)
    run = getattr(mod, "run", None)
    if not isinstance(name, str) or not name or not callable(run):
        raise MethodError(f"{source} is not a method: it must define NAME (a string) and run(ctx, **params)")
    params = getattr(mod, "PARAMS", {})
    if not isinstance(params, dict):
        raise MethodError(f"{source}: PARAMS must be a dict of parameter defaults")
    return Method(name, str(getattr(mod, "DESCRIPTION", "")).strip(), dict(params), run, source)


def builtin_methods() -> dict[str, Method]:
    """The shipped methods, keyed by name, in alphabetical order."""
    import aar.w2s.methods as pkg

    found = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        m = _from_module(
            importlib.import_module(f"aar.w2s.methods.{info.name}"), f"aar.w2s.methods.{info.name}"
        )
        found[m.name] = m
    return dict(sorted(found.items()))


def load_method_file(path: str | Path) -> Method:
    """Load a user's method from a single Python file (see the README: "Adding a method")."""
    p = Path(path)
    if not p.is_file() or p.suffix != ".py":
        raise MethodError(f"method file {p} does not exist or is not a .py file")
    spec = importlib.util.spec_from_file_location(f"aar_user_method_{p.stem}", p)
    if spec is None or spec.loader is None:
        raise MethodError(f"cannot load method file {p}")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:
        raise MethodError(f"method file {p} failed to import: {type(e).__name__}: {e}") from e
    return _from_module(mod, str(p))


def get_method(name_or_path: str) -> Method:
    """A shipped method by name, or a user method file by path (anything ending in .py)."""
    if name_or_path.endswith(".py"):
        return load_method_file(name_or_path)
    methods = builtin_methods()
    if name_or_path not in methods:
        raise MethodError(f"unknown method '{name_or_path}'; known methods: {', '.join(methods)}")
    return methods[name_or_path]
