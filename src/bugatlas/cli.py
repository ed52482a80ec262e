"""The `bugatlas` command: a thin Typer shell over the library API.

Each pipeline stage contributes its commands from its own ``commands`` module (a function
``register(app)``), so a stage's CLI lives beside its code. Third-party plugins add
commands the same way through the ``bugatlas.commands`` entry-point group.

Stages are imported on demand: ``bugatlas diagnose …`` imports only the diagnose stage, so a
command does not pay for scikit-learn, plotly or the web app it does not use. ``--help`` and
unknown words load every stage; ``bugatlas.cli.app`` (for tests and notebooks) has them all.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from importlib.metadata import entry_points

import typer

from bugatlas import __version__
from bugatlas.errors import BugAtlasError

STAGE_COMMANDS = [
    "bugatlas.importers.commands",
    "bugatlas.store.commands",
    "bugatlas.collect.commands",
    "bugatlas.taxonomy.commands",
    "bugatlas.filter.commands",
    "bugatlas.classify.commands",
    "bugatlas.annotate.commands",
    "bugatlas.analyze.commands",
    "bugatlas.report.commands",
    "bugatlas.diagnose.commands",
    "bugatlas.preflight.commands",
    "bugatlas.probe.commands",
    "bugatlas.study.commands",
]

# The command words each stage registers (tests/test_cli.py checks this against the stages).
# A word missing here still works: it only makes that command load every stage.
COMMAND_STAGES = {
    "import": "bugatlas.importers.commands",
    "stats": "bugatlas.store.commands",
    "export": "bugatlas.store.commands",
    "collect": "bugatlas.collect.commands",
    "taxonomy": "bugatlas.taxonomy.commands",
    "filter": "bugatlas.filter.commands",
    "classify": "bugatlas.classify.commands",
    "train": "bugatlas.classify.commands",
    "suggest": "bugatlas.classify.commands",
    "eval": "bugatlas.classify.commands",
    "sample": "bugatlas.annotate.commands",
    "assign": "bugatlas.annotate.commands",
    "annotate": "bugatlas.annotate.commands",
    "agreement": "bugatlas.annotate.commands",
    "disagreements": "bugatlas.annotate.commands",
    "gold": "bugatlas.annotate.commands",
    "labelstudio": "bugatlas.annotate.commands",
    "analyze": "bugatlas.analyze.commands",
    "report": "bugatlas.report.commands",
    "diagnose": "bugatlas.diagnose.commands",
    "index": "bugatlas.diagnose.commands",
    "preflight": "bugatlas.preflight.commands",
    "preflight-env": "bugatlas.preflight.commands",
    "preflight-issues": "bugatlas.preflight.commands",
    "probe": "bugatlas.probe.commands",
    "probe-findings": "bugatlas.probe.commands",
    "run": "bugatlas.study.commands",
}

_app = typer.Typer(
    name="bugatlas",
    help="Mine LLM engine and model issue trackers into a labeled failure study.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bugatlas {__version__}")
        raise typer.Exit()


@_app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """BugAtlas: collect, store, filter, classify, annotate, analyze, report, diagnose."""


_loaded: set[str] = set()


def _load_commands(modules: list[str] | None = None) -> None:
    """Register the commands of ``modules`` (default: every stage) and of plugins, once each."""
    for module_name in STAGE_COMMANDS if modules is None else modules:
        if module_name in _loaded:
            continue
        _loaded.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name + ".").startswith(exc.name + "."):  # stage not in this build
                continue
            raise
        module.register(_app)
    if "plugins" not in _loaded:
        _loaded.add("plugins")
        for ep in entry_points(group="bugatlas.commands"):
            try:
                ep.load()(_app)
            except Exception as exc:  # a broken plugin must not take every other command down
                detail = " ".join(str(exc).split())[:200] or type(exc).__name__
                typer.echo(f"warning: plugin {ep.name!r} ({ep.value}) failed to load, its commands are "
                           f"unavailable: {detail}", err=True)


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # `from bugatlas.cli import app`: the whole command line
        _load_commands()
        return _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _stages_for(argv: list[str]) -> list[str] | None:
    """The stage modules a command line needs; None means all of them."""
    if argv and argv[0] == "--version":
        return []
    if argv and argv[0] in COMMAND_STAGES:
        return [COMMAND_STAGES[argv[0]]]
    return None


class Terminated(KeyboardInterrupt):
    """SIGTERM (a supervisor, `timeout`, `kill`): stopped like Ctrl-C, so the run in progress
    is recorded as interrupted and committed work is kept, instead of dying mid-write with the
    run left "running"."""

    def __str__(self) -> str:
        return "terminated (SIGTERM)"


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is threading.main_thread():  # signal handlers live there only
        signal.signal(signal.SIGTERM, _terminate)
    try:
        _load_commands(_stages_for(argv))
        _app(args=argv, prog_name="bugatlas")
    except BugAtlasError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _say_interrupted()
        sys.exit(130)
    except SystemExit as exc:
        # Typer turns Ctrl-C inside a command into a silent SystemExit(130) (chained from it).
        if exc.code == 130 and _from_keyboard_interrupt(exc):
            _say_interrupted()
        raise


def _say_interrupted() -> None:
    typer.echo("interrupted: work committed so far is kept; run the command again to resume", err=True)


def _from_keyboard_interrupt(exc: BaseException) -> bool:
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


if __name__ == "__main__":
    main()
