"""CLI commands for data: ``collect``, ``data stats``, ``quality``, ``datasets`` (+ ``fetch``)."""

from __future__ import annotations

import json

import typer

datasets_app = typer.Typer(help="Real labelled datasets (SMD/ASD/NAB format).", no_args_is_help=False)


@datasets_app.callback(invoke_without_command=True)
def datasets_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the datasets found in VIGIL_DATA_DIR and $VIGIL_HOME/datasets."""
    if ctx.invoked_subcommand is not None:
        return
    from vigil.config import load_settings
    from vigil.datasets import discover

    settings = load_settings()
    roots = [settings.data_dir, settings.home / "datasets"]
    found = discover(roots)
    if as_json:
        typer.echo(json.dumps({"roots": [str(r) for r in roots], "datasets": [d.to_dict() for d in found]}, indent=2))
        return
    if not found:
        typer.echo(f"no datasets under {' or '.join(str(r) for r in roots)}; try `vigil datasets fetch nab`")
        return
    for info in found:
        sample = ", ".join(info.entities[:3]) + (", ..." if len(info.entities) > 3 else "")
        typer.echo(f"{info.name:<6} {info.format:<9} {len(info.entities):>3} entities  {info.path}  ({sample})")


@datasets_app.command("fetch")
def datasets_fetch(name: str = typer.Argument(..., help="Dataset: nab, smd or asd.")) -> None:
    """Download a dataset from its original public source into $VIGIL_HOME/datasets."""
    from vigil.config import load_settings
    from vigil.datasets import fetch_dataset

    dest = fetch_dataset(name, load_settings().home / "datasets")
    typer.echo(f"{name}: {dest}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(datasets_app, name="datasets")
