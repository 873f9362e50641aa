"""The weak teacher's own predictions (the W2S floor): a harness reference, usable as a method only when
the testbed's protocol exposes the teacher's outputs on the prediction inputs (``teacher_on_test``)."""

from typing import Any

import numpy as np

from aar.w2s.methods.base import MethodContext, MethodError

NAME = "weak"
DESCRIPTION = (
    "Return the weak teacher's probabilities unchanged (the floor PGR is measured from). The harness "
    "computes this reference itself; as a method it needs the testbed option teacher_on_test."
)
PARAMS: dict[str, Any] = {}


def run(ctx: MethodContext) -> np.ndarray:
    """Teacher probabilities on the requested inputs (a clear error without teacher_on_test)."""
    try:
        return ctx.teacher.of(ctx.predict_inputs)
    except MethodError as e:
        raise MethodError(
            "'weak' is the harness's reference (the teacher's own predictions, computed by `aar baseline` "
            "and the server from cached teacher outputs); as a method it needs the teacher's outputs on "
            "the prediction inputs, which this testbed's protocol does not expose (teacher_on_test is "
            f"off). {e}"
        ) from None
