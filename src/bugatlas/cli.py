"""The `bugatlas` command: a thin Typer shell over the library API.

Each pipeline stage contributes its commands from its own ``commands`` module (a function
``register(app)``), so a stage's CLI lives beside its code. Third-party plugins add
commands the same way through the ``bugatlas.commands`` entry-point group.
"""

from __future__ import annotations

import importlib
import sys
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

app = typer.Typer(
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


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """BugAtlas: collect, store, filter, classify, annotate, analyze, report, diagnose."""


def _load_commands() -> None:
    for module_name in STAGE_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and (module_name + ".").startswith(exc.name + "."):  # stage not in this build
                continue
            raise
        module.register(app)
    for ep in entry_points(group="bugatlas.commands"):
        ep.load()(app)


_load_commands()


def main() -> None:
    try:
        app()
    except BugAtlasError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted: work committed so far is kept; run the command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
