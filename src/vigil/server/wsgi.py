"""gunicorn entry point: ``gunicorn -c python:vigil.server.gunicorn_conf vigil.server.wsgi:app``."""

from vigil.server.app import create_app

app = create_app()
