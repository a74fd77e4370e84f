"""CLI commands: ``vigil serve`` (the detection service under gunicorn), and what it groups:
``vigil incidents`` and ``vigil maintenance`` (from the running service) and ``vigil topology`` (from
the settings)."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

import typer

from vigil.errors import BadRequest, ConfigError, NotFound, UpstreamUnavailable


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""

    @app.command()
    def serve(
        host: str = typer.Option(None, help="Bind address (default: settings bind_host, 127.0.0.1)."),
        port: int = typer.Option(None, help="Port (default: settings ports.vigil)."),
        workers: int = typer.Option(1, help="gunicorn workers; keep 1: streaming state is per process."),
        threads: int = typer.Option(None, help="Threads in the worker (default: settings serving.threads)."),
    ) -> None:
        """Serve remote_write ingest, /v1/predict, /metrics and health with gunicorn."""
        from gunicorn.app.base import BaseApplication

        from vigil.config import load_settings
        from vigil.server.gunicorn_conf import options

        settings = load_settings()
        if workers < 1:
            raise ConfigError("--workers must be at least 1")
        if workers > 1:
            typer.echo(
                "vigil: warning: each worker keeps its own streaming state; entities will be split "
                "between workers and /metrics will differ per scrape (see docs/serving.md)",
                err=True,
            )
        opts = options(settings, host=host, port=port, workers=workers, threads=threads)

        class _Server(BaseApplication):  # type: ignore[misc]
            def load_config(self) -> None:
                for key, value in opts.items():
                    self.cfg.set(key, value)

            def load(self) -> Any:
                from vigil.server import create_app

                return create_app(load_settings())

        scheme = "https" if opts.get("certfile") else "http"
        typer.echo(f"vigil: serving on {scheme}://{opts['bind']} ({workers} worker x {opts['threads']} threads)")
        _Server().run()

    @app.command()
    def incidents(
        as_json: bool = typer.Option(False, "--json", help="Print the service's JSON as it is."),
        url: str = typer.Option("", help="The Vigil service (default: the local stack's)."),
        ack: str = typer.Option("", "--ack", metavar="ID", help="Acknowledge this incident."),
        false_positive: str = typer.Option(
            "", "--false-positive", metavar="ID", help="Nothing was wrong: a label the models learn from."
        ),
        confirm: str = typer.Option("", "--confirm", metavar="ID", help="A real problem: a label as well."),
        note: str = typer.Option("", help="Why, with --ack, --false-positive or --confirm."),
    ) -> None:
        """Open incidents, then the recently resolved ones: related entities' alarms grouped. With
        --ack, --false-positive or --confirm, an operator's feedback on one (the admin token)."""
        import getpass

        chosen = {"ack": ack, "false_positive": false_positive, "confirmed": confirm}
        feedback = [(action, incident_id) for action, incident_id in chosen.items() if incident_id]
        if len(feedback) > 1:
            raise BadRequest("give one of --ack, --false-positive and --confirm")
        if feedback:
            ((action, incident_id),) = feedback
            path = f"/v1/incidents/{urllib.parse.quote(incident_id, safe='')}/feedback"
            resp = _ask_service(url, "POST", path, {"action": action, "by": getpass.getuser(), "note": note})
        else:
            resp = _ask_service(url, "GET", "/v1/incidents")
        if feedback:
            done = resp.json()["incident"]
            acknowledged = "acknowledged" if done["acknowledged"] else "not acknowledged"
            summary = f"{done['id']}: {acknowledged}, verdict {done['verdict'] or 'none'}"
            typer.echo(json.dumps(done, indent=1) if as_json else summary)
            return
        _echo_listing(resp.json()["incidents"], as_json, "no incidents", _describe_incident)

    @app.command()
    def maintenance(
        add: list[str] = typer.Option(
            None, "--add", metavar="ENTITY", help="Declare maintenance of ENTITY now (repeat; 'all': every entity)."
        ),
        for_: str = typer.Option("1h", "--for", help="How long, with --add: 30m, 2h, 1h30m (at most 7 days)."),
        start: str = typer.Option("", help="When it begins, with --add: ISO 8601 with a timezone (default: now)."),
        reason: str = typer.Option("", help="What is done, with --add."),
        end: str = typer.Option("", "--end", metavar="ID", help="End this maintenance window now."),
        as_json: bool = typer.Option(False, "--json", help="Print the service's JSON as it is."),
        url: str = typer.Option("", help="The Vigil service (default: the local stack's)."),
    ) -> None:
        """Maintenance windows: while one lasts, its entities' alarms page nobody, open no incident and
        are not learned from. Lists them; --add declares one (the admin token), --end ends one."""
        import getpass

        from vigil.durations import parse_duration

        if add and end:
            raise BadRequest("give --add or --end, not both")
        if add:
            entities = [] if add == ["all"] else list(add)
            body = {"entities": entities, "duration_s": parse_duration(for_), "reason": reason, "by": getpass.getuser()}
            if start:
                body["start"] = start
            answer = _ask_service(url, "POST", "/v1/maintenance", body).json()["window"]
        elif end:
            answer = _ask_service(url, "DELETE", f"/v1/maintenance/{urllib.parse.quote(end, safe='')}").json()["window"]
        else:
            windows = _ask_service(url, "GET", "/v1/maintenance").json()["windows"]
            _echo_listing(windows, as_json, "no maintenance windows", _describe_window)
            return
        typer.echo(json.dumps(answer, indent=1) if as_json else _describe_window(answer))

    @app.command()
    def topology(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Which service runs on which host and what it depends on (``entities:`` in vigil.yml)."""
        from vigil.config import load_settings
        from vigil.detection.incidents import Topology

        services = Topology.from_settings(load_settings()).to_dict()
        if as_json:
            typer.echo(json.dumps({"services": services}, indent=1))
            return
        for name, svc in services.items():
            typer.echo(f"{name}: on {svc['host'] or '?'}, depends on {', '.join(svc['depends_on']) or 'nothing'}")


def _echo_listing(items: list[dict[str, Any]], as_json: bool, empty: str, line: Any) -> None:
    """What the service listed: its JSON as it is, or one line each."""
    if as_json:
        typer.echo(json.dumps(items, indent=1))
        return
    if not items:
        typer.echo(empty)
    for item in items:
        typer.echo(line(item))


def _describe_incident(incident: dict[str, Any]) -> str:
    when = time.strftime("%H:%M:%S", time.localtime(incident["started"]))
    names = ", ".join(e["entity"] + ("*" if e["alarm"] else "") for e in incident["entities"])
    marks = [m for m in ("acknowledged" if incident.get("acknowledged") else "", incident.get("verdict")) if m]
    return f"{incident['id']}  {incident['status']:8}  since {when}  {names}  {' '.join(marks)}".rstrip()


def _describe_window(w: dict[str, Any]) -> str:
    def when(t: float) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(t))

    who = ", ".join(w["entities"]) or "every entity"
    span = f"{when(w['start'])} - {when(w['end'])}"
    return f"{w['id'] or '(vigil.yml)'}  {w['state']:7}  {span}  {who}  {w['reason']}".rstrip()


def _ask_service(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the running Vigil service: reads with the read token, changes with the admin token."""
    import requests

    from vigil.config import load_settings
    from vigil.tokens import read_headers, resolve_token

    settings = load_settings()
    base = (url or settings.url("vigil")).rstrip("/")
    headers = read_headers(settings) if method == "GET" else {"Authorization": f"Bearer {resolve_token(settings)}"}
    try:
        resp = requests.request(method, f"{base}{path}", json=body, headers=headers, timeout=10)
    except requests.RequestException as exc:
        raise UpstreamUnavailable(
            f"the Vigil service at {base} did not answer: {exc}", hint="is it running? (vigil up, vigil serve)"
        ) from None
    _raise_for_answer(resp, base)
    return resp


def _raise_for_answer(resp: Any, base: str) -> None:
    """The service's own reason for a refusal: 404 is NotFound, another 4xx BadRequest, 5xx down."""
    if resp.ok:
        return
    try:
        reason = resp.json().get("error", "")
    except ValueError:
        reason = resp.text[:200]
    if resp.status_code == 404:
        raise NotFound(reason or f"{resp.url} not found")
    if resp.status_code < 500:
        raise BadRequest(f"the Vigil service at {base} refused: {reason}")
    raise UpstreamUnavailable(f"the Vigil service at {base} answered {resp.status_code}: {reason}")
