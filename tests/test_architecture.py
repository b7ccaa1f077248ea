"""The package's shape: no import cycles (tools/check_imports.py), and outside ``models/`` no
dispatch on model class names or families and no probing of model attributes (the model contract
says what callers may know)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PKG = SRC / "audioflex"


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_imports", ROOT / "tools" / "check_imports.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_imports", mod)
    spec.loader.exec_module(mod)
    return mod


def test_no_import_cycles_between_files_or_subpackages() -> None:
    lines, sizes = _checker().report(SRC)
    assert lines == [], "\n".join(lines)
    assert sizes["files"] > 50 and sizes["imports"] > 300  # the whole package was read


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "audioflex" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_cycles_inside_functions_and_skips_type_checking(tmp_path: Path) -> None:
    src = _write(tmp_path, {
        "__init__.py": "",
        "a.py": "def f():\n    from audioflex import b\n",  # an import inside a function counts
        "b.py": "import audioflex.a\n",
        "low/__init__.py": "",
        "low/x.py": "def g():\n    from audioflex.high.y import h\n",
        "high/__init__.py": "",
        "high/y.py": "from audioflex.low import x\n",
        "typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from audioflex import c\n",
        "c.py": "from audioflex import typed\nfrom audioflex.gone import thing\n",
    })
    lines, _ = _checker().report(src)
    text = "\n".join(lines)
    assert "file cycle: audioflex.a <-> audioflex.b" in text
    assert "file cycle: audioflex.high.y <-> audioflex.low.x" in text
    assert "subpackage cycle: high <-> low" in text
    assert "typed" not in text.replace("c.py", "")  # the TYPE_CHECKING import closes no cycle
    assert "missing module: audioflex/c.py:2 audioflex.gone" in text
    assert _checker().main(["check_imports.py", str(src)]) == 1


# ------------------------------------------------------------------------------- source scans
DISPATCH = [
    re.compile(r"\bfamily\s*(==|!=)\s*[\"']"),  # family == "passt"
    re.compile(r"\bfamily\s+(not\s+)?in\s*[\(\[\{]\s*[\"']"),  # family in ("ast", "passt")
    re.compile(r"\.family\s*(==|!=|(not\s+)?in\b)"),  # self.family == ...
    re.compile(r"\bdef _family\b"),
    re.compile(r"\.__name__\s*(==|!=|(not\s+)?in\b)"),  # type(model).__name__ == "HTSAT"
    re.compile(r"[\"'](AST|ElasticAST|HTSAT|PaSST)[\"']\s*:"),  # {"AST": ...} keyed by class names
    re.compile(r"isinstance\([^,]+,\s*\(?\s*(AST|ElasticAST|HTSAT|PaSST)\b"),
]
PROBING = [
    re.compile(r"\b(getattr|hasattr)\(\s*[\w.]*(model|net)\s*,"),  # getattr(model, "max_frames", None)
    re.compile(r"signature\(\s*[\w.]*(model|net)\.forward\b"),  # which arguments forward takes
    re.compile(r"\binput_kind\b"),  # the contract's input_kind, not a class attribute
]


def _offending(patterns: list[re.Pattern[str]]) -> list[str]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        if path.is_relative_to(PKG / "models"):
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if any(p.search(code) for p in patterns):
                out.append(f"{path.relative_to(SRC)}:{i}: {line.strip()}")
    return out


@pytest.mark.parametrize(
    ("line", "patterns"),
    [
        ('if self.family == "htsat":', DISPATCH),
        ('elif family in ("ast", "passt"):', DISPATCH),
        ('return {"AST": "ast", "HTSAT": "htsat"}.get(name, "")', DISPATCH),
        ('if type(model).__name__ == "PaSST":', DISPATCH),
        ("if isinstance(model, (AST, PaSST)):", DISPATCH),
        ('frames = getattr(self.model, "max_length", None)', PROBING),
        ('packed = getattr(emb_model.net, "input_kind", "") == "packed"', PROBING),
        ('takes = "frames" in inspect.signature(model.forward).parameters', PROBING),
    ],
)
def test_scans_catch_what_they_look_for(line: str, patterns: list[re.Pattern[str]]) -> None:
    assert any(p.search(line) for p in patterns)


def test_no_family_or_class_name_dispatch_outside_models() -> None:
    bad = _offending(DISPATCH)
    assert bad == [], "dispatch on a model family/class name (declare it in the ModelContract):\n" + "\n".join(bad)


def test_no_model_attribute_probing_outside_models() -> None:
    bad = _offending(PROBING)
    assert bad == [], "model attributes probed (read model.contract instead):\n" + "\n".join(bad)
