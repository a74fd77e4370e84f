"""Vigil's HTTP service: a Flask app factory and its blueprints (thin: parse, call detection, render)."""

from vigil.server.app import create_app

__all__ = ["create_app"]
