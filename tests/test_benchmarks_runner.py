"""`python -m benchmarks`: every benchmark run in turn, TABLES.md written, failures reported.

The real benchmarks take minutes each; here the registry holds two stand-ins run the same way
(a process per benchmark): one that prints its usage and exits 0, one that exits 2.
"""

from __future__ import annotations

import benchmarks.__main__ as runner


def test_tables_hold_each_benchmark_and_a_failure_sets_the_exit_status(tmp_path, monkeypatch):
    monkeypatch.setattr(
        runner,
        "BENCHMARKS",
        {
            "ok": ("benchmarks.profile_kou", ["--help"], "--json", "1 s"),
            "broken": ("benchmarks.profile_kou", ["--runs", "many"], "--json", "1 s"),
        },
    )
    assert runner.main(["--out", str(tmp_path)]) == 1
    tables = (tmp_path / "TABLES.md").read_text()
    assert "commit" in tables and "load average" in tables
    assert "## ok" in tables and "exit 0" in tables and "usage:" in tables
    assert "## broken" in tables and "exit 2" in tables and "invalid int value" in tables
    assert runner.main(["--out", str(tmp_path), "--only", "ok"]) == 0


def test_list_names_every_benchmark(capsys):
    assert runner.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in runner.BENCHMARKS)
