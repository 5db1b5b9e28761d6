"""Requests per second under gunicorn: ``python bench/http.py --help`` (the code: http_bench.py).

This file only carries the issue's command name. That name shadows the standard library's
``http`` for anything importing it while bench/ is on sys.path (pytest's rootdir conftest puts it
there), so when imported under that name it hands the import over to the standard library.
"""

import importlib
import os
import sys

if __name__ == "__main__":
    _bench = sys.path.pop(0)  # the standard library's http first, then bench/ again
    import http.client  # noqa: F401

    sys.path.insert(0, _bench)
    from http_bench import main

    sys.exit(main())
elif __name__ == "http":
    _here = os.path.dirname(os.path.abspath(__file__))
    _path = sys.path[:]
    sys.path[:] = [p for p in _path if os.path.abspath(p or os.getcwd()) != _here]
    del sys.modules["http"]
    try:
        sys.modules["http"] = importlib.import_module("http")
    finally:
        sys.path[:] = _path
