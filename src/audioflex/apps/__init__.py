"""The apps layer: runners that read inputs, call the inference floor and write reports.

One module per command-level job: :mod:`~audioflex.apps.detect` (``audioflex detect``: events of
files), :mod:`~audioflex.apps.embed` (``audioflex embed``: embeddings on disk),
:mod:`~audioflex.apps.lengths` (``audioflex evaluate``: metrics at several lengths and frame
shifts), :mod:`~audioflex.apps.sed` (``audioflex evaluate`` on event datasets),
:mod:`~audioflex.apps.probe` (``audioflex probe``) and :mod:`~audioflex.apps.demo`
(``audioflex demo``); :mod:`~audioflex.apps.plots` draws the detection timelines. The CLI is a thin
layer above these.
"""
