"""Window edges: the partly padded last step of a short window produces no activity."""

from __future__ import annotations

import torch
from torch import nn

from audioflex.evaluate.events import PostProcessing
from audioflex.inference import OverlapAdd, frame_scores
from audioflex.inference.frames import scores_to_events
from audioflex.models.contract import ModelContract
from audioflex.models.outputs import AudioOutput
from stubs import IdentityFrontend


class PaddingSensitiveModel(nn.Module):
    """Windows of 40 frames, steps of 10; a step's logit rises with its share of zero frames, as a
    trained detector's does when padding looks like an offset: stationary input is -6 everywhere,
    a half-padded step +4."""

    contract = ModelContract(family="stub", input_kind="grid", num_classes=1, num_mel_bins=1, input_frames=40,
                             native_frames=40, frame_step_frames=10, frame_steps=4)

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, spec, frames=None):
        b = spec.shape[0]
        zeros = (spec[:, 0].abs() < 1e-9).float().reshape(b, 4, 10).mean(-1)  # [B, 4]
        logits = (-6.0 + 20.0 * zeros)[..., None]
        return AudioOutput(clip_logits=torch.zeros(b, 1), embedding=torch.zeros(b, 1), frame_logits=logits)


def test_stationary_input_gives_no_activity_at_window_boundaries():
    model, fe = PaddingSensitiveModel(), IdentityFrontend()
    for n in (95, 101, 133, 37, 10):  # last windows 35, 21, 13, 37 and 10 samples long (an input shorter
        # than one step has only its padded step: that one is kept, see test_masked_steps_hold_the_previous_value)
        wave = torch.full((n,), 0.5)
        fs = frame_scores(model, fe, wave, sample_rate=100, batch_size=3)
        assert fs.probs.shape[0] == -(-n // 10)
        events = scores_to_events(fs, PostProcessing(thresholds=0.5))
        assert events == [], (n, fs.probs[:, 0])
        assert fs.probs.max() < 0.01


def test_masked_steps_hold_the_previous_value():
    ola = OverlapAdd()
    ola.add(0, torch.tensor([[1.0], [2.0], [9.0]]), torch.tensor([1.0, 1.0, 0.0]))
    assert ola.result()[:, 0].tolist() == [1, 2, 2]
    ola.add(2, torch.tensor([[3.0], [9.0]]), torch.tensor([1.0, 0.0]))
    assert ola.result()[:, 0].tolist() == [1, 2, 3, 3]
    only = OverlapAdd()  # nothing unmasked: the plain value
    only.add(0, torch.tensor([[0.25]]), torch.tensor([0.0]))
    assert only.result()[:, 0].tolist() == [0.25]
