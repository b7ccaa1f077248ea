"""Benchmarks behind ``audioflex bench``: each returns a JSON-ready dict of measurements.

Speed and memory targets live here, never in unit tests. One module per benchmark:
:mod:`~audioflex.bench.packing` (``bench packing``), :mod:`~audioflex.bench.ast_hf`
(``bench ast-vs-hf``), :mod:`~audioflex.bench.embed` (``bench embed``) and
:mod:`~audioflex.bench.htsat` (``bench htsat``); :mod:`~audioflex.bench.common` holds what they
share (the machine record, timing, peak memory, long test files, child-process runs).
Nothing is imported here, so ``python -m audioflex.bench.htsat`` runs its module cleanly.
"""
