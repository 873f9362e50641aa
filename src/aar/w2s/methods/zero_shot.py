"""Unsupervised elicitation, zero-shot: the strong model's own prior, no teacher at all."""

from dataclasses import replace
from typing import cast

import numpy as np

from aar.w2s.methods.base import MethodContext

NAME = "zero_shot"
DESCRIPTION = (
    "Use the pretrained strong model's centred likelihood scores, no teacher and no training; "
    "for two-option tasks, average over both option orders (consistency fix)."
)
PARAMS = {"consistency": True}


def run(ctx: MethodContext, consistency: bool) -> np.ndarray:
    """Prior probabilities, order-symmetrised for pairwise examples when ``consistency``."""
    model = ctx.strong_model()
    z = model.zero_shot_logits(ctx.predict_inputs)
    if consistency and any(e.pairwise for e in ctx.predict_inputs):
        swapped = [replace(e, options=e.options[::-1]) if e.pairwise else e for e in ctx.predict_inputs]
        zs = model.zero_shot_logits(swapped)
        pair = np.array([e.pairwise for e in ctx.predict_inputs])
        z = np.where(pair, (z - zs) / 2, z)
    return cast(np.ndarray, 1 / (1 + np.exp(-np.clip(z, -50, 50))))
