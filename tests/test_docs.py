"""The docs run: every ```python block of README.md and docs/**/*.md, and every `tinyvision ...`
line of their shell blocks, executed as a reader would, in page order.

* Python blocks of one page share one namespace, so a block may use the imports and names of
  the blocks above it (as a reader pasting them one after another would), and nothing else:
  each page starts from an empty namespace.
* Shell blocks (```sh, ```bash, ```console or a bare ```): the lines that start with
  `tinyvision ` run through the real entry point (``tinyvision.cli.main``, in-process); a
  non-zero exit fails the page. Other lines (make, pip, python -m benchmarks...) are how a
  reader installs or benchmarks, not snippets, and are not run here.
* Everything runs in a fresh temporary folder laid out like the checkout's root (with an
  empty docs/img/), so the files a snippet writes land there.
* A marker comment just above a block changes that:
  ``<!-- slow -->``: takes minutes (a training run); runs only under ``pytest -m slow``;
  ``<!-- no-run: REASON -->``: an excerpt or a sketch that is not meant to run on its own; the
  reason is required and is printed by ``python -m tests.test_docs``.

    python -m tests.test_docs        # counts: blocks run, slow, not run (with reasons)
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"<!--\s*(slow|no-run)\s*(?::\s*(.*?))?\s*-->")
SHELL = ("", "sh", "bash", "console", "shell")


@dataclass
class Block:
    page: Path
    line: int          # 1-based line of the opening fence
    kind: str          # "python" or "shell"
    code: str
    mark: str | None   # None, "slow" or "no-run"
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The python blocks and the `tinyvision` lines of the shell blocks of one page, in order."""
    lines = page.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        lang, start, body = fence.group(1), i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        above = "\n".join(lines[max(0, start - 3):start])
        marks = MARK.findall(above)
        mark, reason = marks[-1] if marks else (None, "")
        if mark == "no-run" and not reason:
            raise ValueError(f"{page}:{start + 1}: <!-- no-run --> needs a reason: <!-- no-run: why -->")
        if lang == "python":
            found.append(Block(page, start + 1, "python", "\n".join(body), mark or None, reason or ""))
        elif lang in SHELL:
            commands = [strip_command(line) for line in body if re.match(r"^\s*(\$ )?tinyvision\s", line)]
            if commands:
                found.append(Block(page, start + 1, "shell", "\n".join(commands), mark or None, reason or ""))
    return found


def strip_command(line: str) -> str:
    """'$ tinyvision models   # comment' -> 'tinyvision models'."""
    line = line.strip().removeprefix("$ ")
    return line.split("  #", 1)[0].split(" #", 1)[0].strip()


@contextlib.contextmanager
def in_folder(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_shell(block: Block) -> None:
    from tinyvision.cli import main

    for command in block.code.splitlines():
        words = shlex.split(command)[1:]  # without "tinyvision"
        try:
            main(words)
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise AssertionError(f"{block.where}: `{command}` exited with {exc.code!r}") from None


def run_page(page: Path, tmp_path: Path, slow: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")  # figures are written, never shown
    namespace: dict = {"__name__": "__docs__"}
    (tmp_path / "docs" / "img").mkdir(parents=True)  # snippets that redraw a figure write there
    with in_folder(tmp_path):
        for block in blocks(page):
            if block.mark == "no-run" or (block.mark == "slow" and not slow):
                continue
            if block.kind == "shell":
                run_shell(block)
                continue
            try:
                exec(compile(block.code, block.where, "exec"), namespace)
            except Exception as exc:  # noqa: BLE001  (the page and line say which snippet)
                raise AssertionError(f"{block.where}: the python block fails: {type(exc).__name__}: {exc}") from exc


PAGES_WITH_CODE = [p for p in PAGES if blocks(p)]


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=[str(p.relative_to(ROOT)) for p in PAGES_WITH_CODE])
def test_page_runs(page: Path, tmp_path: Path) -> None:
    run_page(page, tmp_path, slow=False)


SLOW_PAGES = [p for p in PAGES_WITH_CODE if any(b.mark == "slow" for b in blocks(p))]


@pytest.mark.slow
@pytest.mark.parametrize("page", SLOW_PAGES, ids=[str(p.relative_to(ROOT)) for p in SLOW_PAGES])
def test_page_runs_with_its_slow_blocks(page: Path, tmp_path: Path) -> None:
    run_page(page, tmp_path, slow=True)


def test_every_no_run_block_gives_a_reason() -> None:
    for page in PAGES:
        for block in blocks(page):  # blocks() raises on a no-run without a reason
            assert block.mark != "no-run" or block.reason


if __name__ == "__main__":
    every = [b for p in PAGES for b in blocks(p)]
    for kind in ("python", "shell"):
        of_kind = [b for b in every if b.kind == kind]
        print(f"{kind}: {len(of_kind)} blocks, {sum(b.mark is None for b in of_kind)} run by `make test`, "
              f"{sum(b.mark == 'slow' for b in of_kind)} by `make test-slow`, "
              f"{sum(b.mark == 'no-run' for b in of_kind)} not run")
    for b in every:
        if b.mark == "no-run":
            print(f"  not run: {b.where}: {b.reason}")
    sys.exit(0)
