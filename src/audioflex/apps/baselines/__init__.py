"""Trivial models a trained transformer has to beat on the same data and splits
(``audioflex evaluate --baseline SPLIT``).

- :mod:`.clip`: clip labels from the log-mel mean and std of each band, logistic regression;
- :mod:`.sed`: sound events from log-mel blocks with context, an MLP frame classifier.

Both use the same log-mel front end (:func:`.common.baseline_logmel`).
"""
