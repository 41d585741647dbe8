"""Speech cells on two time scales: the usual grid and a coarse one beside it."""

from __future__ import annotations

import numpy as np

from embedbeam.transforms.sparse.audio import featurize_audio
from embedbeam.transforms.sparse.modalities import MODALITIES, vocabulary_size

SPEECH = {setting.name: setting.default for setting in MODALITIES["audio"].flags}


def test_two_scales_are_the_fine_grid_then_a_coarse_grid_of_a_quarter_the_slices(spoken_seven):
    two_scales = {**SPEECH, "cells": "band_deviations_two_scales"}
    fine = featurize_audio(spoken_seven, **SPEECH)
    both = featurize_audio(spoken_seven, **two_scales)

    fine_size = 20 * 16 * 2
    assert vocabulary_size("audio", two_scales) == fine_size + 20 * 4 * 2
    assert np.array_equal(both.ids[both.ids < fine_size], fine.ids)
    np.testing.assert_array_equal(both.weights[both.ids < fine_size], fine.weights)
    coarse = both.ids[both.ids >= fine_size] - fine_size
    assert coarse.size > 0 and coarse.max() < 20 * 4 * 2
    assert len(np.unique(coarse // 2)) == coarse.size  # a cell is louder or quieter, not both
