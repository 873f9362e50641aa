"""benchmarks/check_imports.py: cycles through imports inside functions count; TYPE_CHECKING ones do not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "check_imports.py"


def _package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "pkg"
    for rel, text in files.items():
        f = pkg / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return pkg


def _run(pkg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--package", str(pkg), *args],
                          capture_output=True, text=True, timeout=60)


def test_cycle_hidden_in_a_function_is_found(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "sub/__init__.py": "",
        "b.py": "def f():\n    from .sub import c\n    return c\n",
        "sub/c.py": "def g():\n    from .. import a\n    return a\n",
        "d.py": "import pkg.a\n",
    })
    res = _run(pkg)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "cycle among 3 modules" in res.stdout
    for edge in ("pkg.a -> pkg.b", "pkg.b -> pkg.sub.c", "pkg.sub.c -> pkg.a"):
        assert edge in res.stdout
    assert "pkg.d" not in res.stdout.split("cycle among", 1)[1]
    assert res.stdout.strip().endswith("import cycles: 1")
    top = _run(pkg, "--top-level")  # the same package without the imports inside functions
    assert top.returncode == 0 and top.stdout.strip().endswith("import cycles: 0")


def test_type_checking_imports_and_acyclic_packages_pass(tmp_path: Path) -> None:
    pkg = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
        "b.py": "from pkg import a\nclass B: ...\n",
    })
    res = _run(pkg, "--json", str(tmp_path / "graph.json"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 under TYPE_CHECKING" in res.stdout
    assert (tmp_path / "graph.json").read_text().count('"type_checking": true') == 1
