"""``clipline --help`` (and ``submit``/``status`` --help) print an exit-code table; README's "Exit codes
(every command)" is the contract."""

from __future__ import annotations

from pathlib import Path

from .helpers import clipline, scratch_env


def test_help_exit_codes_name_storage_and_interrupt_as_the_readme_does(tmp_path: Path) -> None:
    """The ``clipline --help`` exit-code table says what README's does: the store of clips and
    results under 3, and 130 (interrupted). Before: exit 3 named only "broker, Redis or database
    unreachable, or the database schema" (no ``storage_unavailable``) and 130 was missing."""
    done = clipline(scratch_env(tmp_path), "--help")
    assert done.returncode == 0
    text = done.stdout
    three = text.split("\n  3 ", 1)[1].split("\n  4 ", 1)[0]
    assert "storage" in three or "store" in three, three
    assert "130" in text
