"""Shallow-probe evaluation on HEAR-format tasks (``audioflex probe``), as the HEAR kit does it.

Task directory (heareval layout): ``task_metadata.json``, ``labelvocabulary.csv`` (``idx,label``),
``<split>.json`` per split (scene: ``{"a.wav": ["dog"]}``; event: ``{"a.wav": [{"label": "beep",
"start": 865.4, "end": 1379.8}]}`` in ms) and the audio in ``<sample_rate>/<split>/``. Splits are
``train``/``valid``/``test`` or folds ``fold00`` … (``split_mode`` containing ``kfold``, or fold
files present): fold ``i`` is tested with fold ``i + 1`` as validation and the rest as training,
and the score is the mean over folds.

Protocol (the HEAR kit's ``heareval.predictions``, re-implemented without PyTorch Lightning):
frozen embeddings (scene embeddings for scene tasks, timestamp embeddings for event tasks; cached
on disk, resumable; or read from a directory the kit's embedding runner wrote), an MLP (1 or 2
hidden layers of 1024: Linear -> BatchNorm -> Dropout(0.1) -> ReLU; Xavier initialisation), Adam,
softmax cross-entropy (multiclass) or sigmoid BCE (multilabel, events), validation every 3 epochs
with early stopping (patience 20) on the task's first score, 8 grid points (learning rate x depth x
initialisation) chosen on the first data split and retrained on the others. Scores are the task's
``evaluation`` list: top-1 accuracy, mAP, d', AUC, and for events the onset (or onset+offset)
F-measure through sed_eval with the kit's post-processing (median filter over the probabilities,
threshold > 0.5, minimum event length; picked on validation) or the 1 s segment error rate.

Modules: :mod:`~audioflex.hear.probe.tasks` (task directories), :mod:`~audioflex.hear.probe.scores`
(HEAR scores), :mod:`~audioflex.hear.probe.config` (grid), :mod:`~audioflex.hear.probe.splits`
(rows and targets of a split), :mod:`~audioflex.hear.probe.mlp` (predictor and its training),
:mod:`~audioflex.hear.probe.run` (the probe end to end).
"""

from audioflex.hear.probe.config import ProbeConfig, grid, postprocessing_grid
from audioflex.hear.probe.mlp import ProbeMLP
from audioflex.hear.probe.run import probe_embeddings, probe_heareval_dir
from audioflex.hear.probe.scores import (
    SCORES,
    event_score,
    hear_events,
    maximize,
    onset_f_measure,
    scene_score,
    task_scores,
)
from audioflex.hear.probe.tasks import (
    HearTask,
    TaskError,
    data_splits,
    metric_name,
    read_heareval_embeddings,
    read_task,
)

__all__ = [
    "SCORES",
    "HearTask",
    "ProbeConfig",
    "ProbeMLP",
    "TaskError",
    "data_splits",
    "event_score",
    "grid",
    "hear_events",
    "maximize",
    "metric_name",
    "onset_f_measure",
    "postprocessing_grid",
    "probe_embeddings",
    "probe_heareval_dir",
    "read_heareval_embeddings",
    "read_task",
    "scene_score",
    "task_scores",
]
