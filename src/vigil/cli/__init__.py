"""The ``vigil`` command line: thin wrappers that parse, call orchestration and render."""
