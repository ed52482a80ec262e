"""`bugatlas preflight`: check a deployment before launching it (thin CLI over run_preflight)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from bugatlas.cli_common import DbOption, JsonOption, console, print_json
from bugatlas.errors import BadInputError


def register(app: typer.Typer) -> None:
    @app.command(
        "preflight",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def preflight(
        command: Annotated[list[str] | None, typer.Argument(
            help="The launch command after --: vllm serve MODEL …, python -m sglang.launch_server …, llama-server -m FILE …",
            show_default=False)] = None,
        env: Annotated[Path | None, typer.Option("--env", help="Describe the machine (YAML/JSON: gpus, driver, cuda_runtime, cpu_ram_gib, python, packages) instead of detecting this one.")] = None,
        config: Annotated[Path | None, typer.Option("--config", help="A YAML deployment description (command or engine+args, optional model_config and machine).")] = None,
        model_config: Annotated[str | None, typer.Option("--model-config", help="Model shape: a known name (llama-3-8b, qwen3-8b, deepseek-v3, …), a config.json or a model directory.")] = None,
        python: Annotated[str | None, typer.Option("--python", help="The engine's Python interpreter (its venv) to read installed packages from. Default: the one the launch command names or the shebang of its console script.")] = None,
        only: Annotated[list[str] | None, typer.Option("--only", help="Run only checks whose id starts with this (env, res, assets, tok, res.gpu_memory …); repeatable.")] = None,
        list_models: Annotated[bool, typer.Option("--list-models", help="List the known model shapes and exit.")] = False,
        no_examples: Annotated[bool, typer.Option("--no-examples", help="Do not look up example issues in the study store.")] = False,
        junit: Annotated[Path | None, typer.Option("--junit", help="Also write a JUnit XML report (blocking findings as failures).")] = None,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Check an engine launch against a machine before running it.

        Exit code: 0 all checks pass, 10 warnings, 20 blocking findings
        (1 = preflight itself failed, 2 = bad input).
        """
        from bugatlas.preflight import (
            detect_machine,
            known_models,
            load_deployments,
            load_machine,
            machine_from_mapping,
            parse_command,
            run_preflight,
        )  # fmt: skip
        from bugatlas.preflight.render import render_report

        if list_models:
            rows = {k: {"aliases": v.get("aliases", []), "params": float(v["params"]), "source": v["source"]}
                    for k, v in known_models().items()}  # fmt: skip
            if as_json:
                print_json(rows)
            else:
                for k, v in rows.items():
                    console.print(f"{k:16} {v['params'] / 1e9:7.2f} B  {', '.join(v['aliases'][:3])}")
            return
        if junit is not None and not junit.parent.is_dir():
            raise BadInputError(f"--junit {junit}: directory {junit.parent} does not exist")
        if junit is not None and junit.is_dir():
            raise BadInputError(f"--junit {junit}: is a directory; give a file such as {junit / 'preflight.xml'}")
        if env is not None and python is not None:
            raise BadInputError("--python reads packages on this host; --env describes the machine (packages included): give one")
        if config is not None:
            if command:
                raise BadInputError("give either --config FILE or a launch command after --, not both")
            plans = load_deployments(config)
        elif command:
            plans = [("command line", parse_command(command), {})]
        else:
            raise BadInputError("no launch command: bugatlas preflight [OPTIONS] -- vllm serve MODEL … (or --config deploy.yaml)")
        store = None
        if not no_examples:
            path = db or Path(os.environ.get("BUGATLAS_DB") or "bugatlas.db")
            if path.exists():
                from bugatlas.store import Store

                store = Store(path, create=False)
        reports = []
        try:
            for name, launch, doc in plans:
                if env is not None:
                    machine = load_machine(env)
                elif doc.get("machine"):
                    machine = machine_from_mapping(doc["machine"], where=f"{config}: {name}: machine")
                else:
                    machine = detect_machine(python=python or launch.engine_interpreter())
                reports.append((name, run_preflight(launch, machine, model_config=model_config or doc.get("model_config"),
                                                    store=store, only=only)))  # fmt: skip
        finally:
            if store is not None:
                store.close()
        worst = max(r.exit_code for _, r in reports)
        if junit is not None:
            from bugatlas.preflight.render import write_junit

            write_junit(reports, junit)
        if as_json:
            if len(reports) == 1:
                print_json(reports[0][1].to_dict())
            else:
                print_json({"exit_code": worst, "deployments": [{"name": n, **r.to_dict()} for n, r in reports]})
        else:
            for name, report in reports:
                if len(reports) > 1:
                    console.rule(f"[bold]{name}")
                render_report(report, console)
            if len(reports) > 1:
                console.print(f"{len(reports)} deployments · exit code {worst} (the worst)")
        raise typer.Exit(worst)

    @app.command("preflight-env")
    def preflight_env(
        python: Annotated[str | None, typer.Option("--python", help="Read packages from this interpreter (the engine's venv).")] = None,
        output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the YAML here instead of stdout.")] = None,
    ) -> None:
        """Describe this machine (GPUs, driver, CUDA, RAM, Python, packages) as a YAML file that
        `bugatlas preflight --env FILE` reads: detect on the GPU host, check anywhere."""
        import yaml

        from bugatlas.preflight import detect_machine

        if output is not None and not output.parent.is_dir():
            raise BadInputError(f"--output {output}: directory {output.parent} does not exist")
        if output is not None and output.is_dir():
            raise BadInputError(f"--output {output}: is a directory; give a file such as {output / 'gpu-node.yaml'}")
        text = yaml.safe_dump(detect_machine(python=python).to_description(), sort_keys=False)
        if output is None:
            sys.stdout.write(text)
        else:
            output.write_text(text, encoding="utf-8")
            console.print(f"wrote {output}")

    @app.command("preflight-issues")
    def preflight_issues(
        repo: Annotated[list[str] | None, typer.Option("--repo", help="Only these repositories (repeatable).")] = None,
        labels: Annotated[bool, typer.Option("--labels/--no-labels", help="Store findings as labels (taxonomy preflight, source preflight-retro).")] = True,
        show: Annotated[int, typer.Option("--show", help="List this many issues with findings.")] = 15,
        guess_gpu: Annotated[bool, typer.Option("--guess-gpu", help="Also run memory/kernel/quantization checks against the GPU the issue text names (noisy).")] = False,
        db: DbOption = None,
        as_json: JsonOption = False,
    ) -> None:
        """Retrospective preflight: run the machine-free checks (and, where the issue names a GPU,
        memory/kernels/quantization) on the launch commands pasted in stored issues."""
        from rich.markup import escape
        from rich.table import Table

        from bugatlas.cli_common import open_store
        from bugatlas.preflight.retro import scan_store, store_labels

        store = open_store(db, create=False)
        try:
            with store.run("preflight-issues", {"repos": repo or [], "labels": labels, "guess_gpu": guess_gpu}) as run:
                result = scan_store(store, repos=repo, progress=not as_json, guess_gpu=guess_gpu)
                written = store_labels(store, result, run_id=run.id) if labels else 0
                data = result.to_dict()
                run.summary.update({k: v for k, v in data.items() if k != "issues"} | {"labels": written})
        finally:
            store.close()
        if as_json:
            print_json(data | {"labels_written": written})
            return
        console.print(
            f"{data['issues_scanned']:,} issues · {data['with_command']:,} paste a launch command · "
            f"{data['parsed']:,} parsed · {data['with_known_model']:,} with a known model shape"
            + (f" · {data['with_gpu_named']:,} name a GPU" if guess_gpu else " · GPU-bound checks off (--guess-gpu)"))
        console.print(f"[bold red]{data['issues_with_block']}[/] issues with a blocking finding, "
                      f"[yellow]{data['issues_with_warn_only']}[/] with warnings only"
                      + (f" · {written} labels stored" if labels else ""))
        table = Table(title="findings by check (issues)")
        table.add_column("check")
        table.add_column("block", justify="right")
        table.add_column("warn", justify="right")
        for check_id in sorted(set(data["block_by_check"]) | set(data["warn_by_check"])):
            table.add_row(check_id, str(data["block_by_check"].get(check_id, 0)), str(data["warn_by_check"].get(check_id, 0)))
        console.print(table)
        issues = sorted(data["issues"], key=lambda i: (i["worst"] != "block", i["repo"], i["number"]))[:show]
        for i in issues:
            f = next(x for x in i["findings"] if x["severity"] == i["worst"])
            console.print(escape(f"{i['worst'].upper():5} {i['repo']}#{i['number']} [{f['check']}] {f['message'][:160]}"))
