"""The weak teacher's own predictions (the W2S floor)."""

from aar.w2s.methods.base import MethodContext

NAME = "weak"
DESCRIPTION = "Return the weak teacher's probabilities unchanged (the floor PGR is measured from)."
PARAMS: dict = {}


def run(ctx: MethodContext):
    """Teacher probabilities on the requested inputs."""
    return ctx.teacher.of(ctx.predict_inputs)
