"""Full fine-tuning: every parameter of the model is trained; no per-layer adapter."""

from adapters.base import HParams
from adapters.registry import MethodSpec, add

add(
    MethodSpec(
        name="full",
        label="Full FT",
        adapter=None,
        hparams=HParams,
        default_rank=None,
        param_count=lambda shapes, rank, hp: sum(d * k + d for d, k in shapes),
        color="#000000",
        marker="s",
        dense_update="it trains W itself: the d x k weight and its d x k gradient",
        reference="full fine-tuning: weights and biases of every layer",
    )
)
