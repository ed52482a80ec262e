"""The command line as a user meets it: version, help, import errors, stats and export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from tests.conftest import CORPUS, LIU_CSV


def bugatlas(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bugatlas.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)  # fmt: skip


def test_version_and_help() -> None:
    out = bugatlas("--version")
    assert out.returncode == 0 and out.stdout.startswith("bugatlas ")
    for cmd in ("import", "stats", "export"):
        assert bugatlas(cmd, "--help").returncode == 0


def test_import_stats_export_round_trip(shared_data: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    out = bugatlas("import", "--db", db, str(CORPUS), str(LIU_CSV))
    assert out.returncode == 0, out.stderr
    stats = json.loads(bugatlas("stats", "--db", db, "--json").stdout)
    assert stats["issues"] == 2997 and stats["references"] == 929
    assert stats["by_repository"]["vllm-project/vllm"] == 1067
    assert stats["references_by_repository"]["vllm-project/vllm"] == 290
    assert stats["by_year"] == {"2023": 586, "2024": 1186, "2025": 1225}
    assert {"taxonomy": "liu2025", "source_kind": "human", "source": "dataset:liu2025",
            "issues": 929, "records": 929, "labels": 3954} in stats["label_sources"]
    for fmt in ("jsonl", "csv", "parquet"):
        res = bugatlas("export", "--db", db, "--format", fmt, str(tmp_path / fmt))
        assert res.returncode == 0, res.stderr
    issues = pd.read_parquet(tmp_path / "parquet" / "issues.parquet")
    assert len(issues) == 2997 + 929
    first = json.loads((tmp_path / "jsonl" / "labels.jsonl").read_text().splitlines()[0])
    assert first["taxonomy"] == "liu2025" and first["source"] == "dataset:liu2025"


def test_bad_input_is_one_line_with_nonzero_exit(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"repo": "a/b", "number": 1, "title": "ok"}\n{"repo": "a/b", "number": \n')
    db = str(tmp_path / "s.db")
    out = bugatlas("import", "--db", db, str(bad))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert f"{bad}: line 2: invalid JSON" in out.stderr
    skipped = bugatlas("import", "--db", db, "--skip-bad", str(bad))
    assert skipped.returncode == 0 and "1 bad record(s) skipped" in skipped.stderr
    assert "2 records, 1 issues, 0 labels, 1 skipped" in skipped.stdout
    assert bugatlas("stats", "--db", str(tmp_path / "none.db")).returncode == 1


def test_command_stages_table_names_every_command() -> None:
    """`bugatlas WORD` imports only WORD's stage; the table must know every stage's words."""
    import importlib

    import typer

    from bugatlas import cli

    words: dict[str, str] = {}
    for module_name in cli.STAGE_COMMANDS:
        probe = typer.Typer()
        importlib.import_module(module_name).register(probe)
        for command in probe.registered_commands:
            words[command.name or command.callback.__name__.replace("_", "-")] = module_name
        for group in probe.registered_groups:
            words[group.name or group.typer_instance.info.name] = module_name
    assert words == cli.COMMAND_STAGES


def test_a_command_loads_only_its_stage() -> None:
    code = ("import sys; from bugatlas import cli; cli._load_commands(cli._stages_for(['diagnose'])); "
            "print(int('sklearn' in sys.modules), int('plotly' in sys.modules), sorted(cli._loaded))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["0", "0"] and "bugatlas.diagnose.commands" in out.stdout


def test_ctrl_c_in_a_command_says_so_in_one_line_and_exits_130(tmp_path: Path, monkeypatch, capsys) -> None:
    """Typer turns KeyboardInterrupt into a silent exit 130: the user must still be told."""
    import pytest

    from bugatlas import cli
    from bugatlas.store import store as store_module

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    data = tmp_path / "one.jsonl"
    data.write_text('{"repo": "a/b", "number": 1, "title": "ok"}\n')
    monkeypatch.setattr(store_module.Store, "migrate", interrupted)
    with pytest.raises(SystemExit) as exc:
        cli.main(["import", "--db", str(tmp_path / "s.db"), str(data)])
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert err.startswith("interrupted:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_plugins_add_commands_and_a_broken_one_does_not_break_the_rest(tmp_path: Path) -> None:
    """Plugins come through the `bugatlas.commands` entry points (a distribution on the path,
    built here); one that fails to import warns in one line and every other command works."""
    import os

    for name, body in (("good", "def register(app):\n    @app.command('hello')\n    def hello():\n"
                                "        print('hello from a plugin')\n"),
                       ("broken", "import no_such_module_anywhere\n")):
        (tmp_path / f"{name}_plugin.py").write_text(body)
        dist = tmp_path / f"{name}_plugin-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[bugatlas.commands]\n{name} = {name}_plugin:register\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    run = lambda *a: subprocess.run([sys.executable, "-m", "bugatlas.cli", *a], capture_output=True,  # noqa: E731
                                    text=True, env=env, timeout=300)  # fmt: skip
    out = run("hello")
    assert out.returncode == 0 and "hello from a plugin" in out.stdout
    assert "warning: plugin 'broken' (broken_plugin:register) failed to load" in out.stderr
    assert "Traceback" not in out.stderr
    assert run("taxonomy", "list").returncode == 0
