"""Entry point of the ``vigil`` console script.

Each command group lives in its own module with a ``register(app)`` function; this module only
assembles them and turns :class:`~vigil.errors.VigilError` into one readable line and an exit code.
"""

from __future__ import annotations

import sys

import typer

from vigil.cli import bench, chat, data, ops, serve, stack, train, validate
from vigil.errors import VigilError

app = typer.Typer(
    name="vigil",
    help="Vigil: ML anomaly detection for Prometheus metrics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.command()
def version() -> None:
    """Print Vigil's version."""
    from vigil import __version__

    typer.echo(__version__)


for _module in (stack, data, bench, train, serve, chat, validate, ops):
    _module.register(app)


def main() -> None:
    try:
        app()
    except VigilError as exc:
        print(f"vigil: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
