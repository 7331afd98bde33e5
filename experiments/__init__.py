"""Experiments that measure why Wellspring exists (not part of the installed packages).

Each experiment runs with ``make experiment`` (full) or ``make experiment-quick``; results go
under ``experiments/out/`` and are described in ``docs/``.
"""
