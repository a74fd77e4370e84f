"""The local stack: Vigil's dependencies and services as supervised child processes on loopback.

``registry`` says what runs, ``render`` writes its config files from the templates in ``deploy/``,
``procs`` records and stops processes through pid files, ``health`` asks each one whether it answers,
``supervisor`` keeps them running, and ``control`` is what ``vigil up/down/status`` call.
"""
