"""CLI commands: ``vigil explain [ENTITY] [--json]`` and ``vigil chat "..."``.

Both talk to the running stack through Prometheus (Vigil's own ``vigil_anomaly*`` series plus the
raw metrics) and Alertmanager (silences), like the chat surfaces do.
"""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""

    @app.command()
    def explain(
        entity: str = typer.Argument(None, help="Entity to explain; default: the most anomalous one now."),
        as_json: bool = typer.Option(False, "--json", help="Print the explanation and its evidence as JSON."),
    ) -> None:
        """Explain why an entity is anomalous: evidence, signature, runbook steps (LLM if configured)."""
        from vigil.config import load_settings
        from vigil.wiring import build_chatops

        chat = build_chatops(load_settings())
        explanation = chat.explain(entity or None)
        if as_json:
            typer.echo(json.dumps(explanation.to_dict(), indent=2))
        else:
            typer.echo(explanation.text)
            reason = explanation.llm.get("reason")
            if explanation.llm.get("attempted") and reason:
                typer.echo(f"\n(LLM answer not used: {reason})", err=True)

    @app.command()
    def chat(
        message: str = typer.Argument(..., help='A command: "status", "explain [ENTITY]", "silence ENTITY 30m".'),
        as_json: bool = typer.Option(False, "--json", help="Print the reply's data as JSON."),
    ) -> None:
        """The chat commands from the terminal (the same ones Slack's /vigil accepts)."""
        import getpass

        from vigil.config import load_settings
        from vigil.wiring import build_chatops

        reply = build_chatops(load_settings()).handle(message, user=f"cli:{getpass.getuser()}")
        if as_json:
            typer.echo(json.dumps({"ok": reply.ok, "text": reply.text, **reply.data}, indent=2))
        else:
            typer.echo(reply.text)
        if not reply.ok:
            raise typer.Exit(1)
