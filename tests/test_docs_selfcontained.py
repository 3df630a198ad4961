"""The repository stands alone: what it cites is in it, and its commands run from a clone.

* No file cites notes that live outside the repository (the development machine's private
  performance and model notes, or anything under a ``shared/`` folder).
* No page, script or library file names an absolute path of one machine (``/work/...``,
  ``/tmp/...``, ``/home/...``): a command in the docs must run from the root of a clean clone.
* Every Markdown link, every ``*.md`` file named anywhere, and every repository path written
  in prose or code (``docs/convolution.md``, ``kernels/cpu/conv.py``, ``nn/module.py``) exists.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()
TEXT_SUFFIXES = (".md", ".py", ".sh", ".cfg", ".toml", ".txt", ".yml", ".yaml", ".ini")


def _tracked() -> list[str]:
    """The files a clone holds (git's list; the tree minus build outputs without git)."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return [f for f in out.splitlines() if (ROOT / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        skip = {".venv", ".git", "build", "dist", "runs", ".pytest_cache", ".hypothesis", "__pycache__"}
        return [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*")
                if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


# Citations of notes outside the repository, and absolute paths of one machine.
# the notes' names are assembled, so that this file does not itself cite them
NOTES = ("performance", "models")
OUTSIDE = re.compile("|".join(rf"reference/{n}\.md" for n in NOTES) + r"|(?<![\w-])shared/")
ABSOLUTE = re.compile(r"(?<![\w.~-])/(?:work|tmp|home|root|Users)/[\w./-]*")

FILES = _tracked()
TEXTS = {f: (ROOT / f).read_text(errors="replace") for f in FILES
         if f != THIS and (f.endswith(TEXT_SUFFIXES) or Path(f).name == "Makefile")}


def _hits(pattern: re.Pattern, files: dict[str, str]) -> list[str]:
    return [f"{f}:{text[:m.start()].count(chr(10)) + 1}: {m.group(0)!r}"
            for f, text in files.items() for m in pattern.finditer(text)]


def test_scan_reads_the_docs_and_the_code():
    assert {"README.md", "Makefile", "docs/autograd.md", "tinyvision/__init__.py"} <= set(TEXTS)


def test_nothing_cites_notes_outside_the_repository():
    hits = _hits(OUTSIDE, TEXTS)
    assert not hits, "cites files a clone lacks (write the fact itself, or point to docs/):\n" + "\n".join(hits)


# Files that other work in progress cites before it lands (each with who writes it); a mention
# of one of these is not counted until then. Remove an entry once its file is in the repository.
PENDING = {
    "docs/distributed.md": "the page of tinyvision.distributed (issue #20)",
    "tests/test_fuzz_errors.py": "the bad-argument fuzz test (issue #13)",
}


def test_every_markdown_file_named_exists():
    names = {Path(f).name for f in FILES if f.endswith(".md")} | {Path(f).name for f in PENDING}
    mention = re.compile(r"(?<![\w.-])[\w-]+(?:\.[\w-]+)*\.md\b")
    hits = [h for h in _hits(mention, TEXTS) if h.rsplit(" ", 1)[1].strip("'") not in names]
    assert not hits, "names a .md file that is not in the repository:\n" + "\n".join(hits)


# Folders of this repository: a path written with one of these first is ours and must exist.
OUR_FOLDERS = {"tinyvision", "kernels", "docs", "tests", "benchmarks", "reference", "cpu", "gpu", "nn",
               "functional", "models", "data", "train", "viz", "optim", "autograd", "ops", "metrics",
               "imaging", "distributed", "fixtures"}


def _exists(path: str, cited_in: str) -> bool:
    """Relative to the root, to the citing file, to the package (``nn/module.py``) or to the
    kernels folder (installed as ``tinyvision/kernels``, read as ``reference/conv.py``)."""
    if path in PENDING:
        return True
    candidates = [ROOT / path, (ROOT / cited_in).parent / path, ROOT / "tinyvision" / path,
                  ROOT / "kernels" / path, ROOT / path.replace("tinyvision/kernels/", "kernels/", 1)]
    return any(c.exists() for c in candidates)


def test_every_repository_path_written_exists():
    path = re.compile(r"(?<![\w./:-])((?:[\w.-]+/)+[\w.-]+\.(?:md|py|sh))\b")
    hits = [f"{f}:{text[:m.start()].count(chr(10)) + 1}: {m.group(1)}"
            for f, text in TEXTS.items() for m in path.finditer(text)
            if m.group(1).split("/")[0] in OUR_FOLDERS and not _exists(m.group(1), f)]
    assert not hits, "names a repository file that does not exist:\n" + "\n".join(hits)


def test_every_markdown_link_resolves():
    link = re.compile(r"\]\(([^)\s]+)\)")
    hits = [f"{f}: {m.group(1)}" for f, text in TEXTS.items() if f.endswith(".md")
            for m in link.finditer(text)
            if not re.match(r"[a-z]+:|#", m.group(1)) and not ((ROOT / f).parent / m.group(1).split("#")[0]).exists()]
    assert not hits, "broken links:\n" + "\n".join(hits)


# Pages, scripts and the library: where a user reads or runs a path.
def _user_facing(f: str) -> bool:
    return (f.endswith(".md") or Path(f).name == "Makefile" or f.endswith(".sh")
            or f.startswith(("docs/", "benchmarks/", "tinyvision/", "kernels/", "tests/fixtures/")))


def test_no_absolute_path_of_one_machine():
    hits = _hits(ABSOLUTE, {f: t for f, t in TEXTS.items() if _user_facing(f)})
    assert not hits, ("names a path of one machine; write a command that runs from the root of a "
                      "clone (`.venv/bin/python ...`, `tinyvision verify NAME`):\n" + "\n".join(hits))


@pytest.mark.parametrize("text, pattern", [
    ("see /work/shared/reference/" + NOTES[1] + ".md", "absolute"),
    ("(reference/" + NOTES[0] + ".md, section 5)", "outside"),
    ("run `/tmp/tvenv/bin/python x.py`", "absolute"),
])
def test_the_patterns_catch_what_they_are_for(text, pattern):
    """The checks above can fail: each kind of citation they exist for is caught."""
    assert {"absolute": ABSOLUTE, "outside": OUTSIDE}[pattern].search(text)
