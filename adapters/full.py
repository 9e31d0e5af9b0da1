"""Full fine-tuning: every parameter of the model is trained; no per-layer adapter."""

from adapters.registry import MethodSpec, add

add(
    MethodSpec(
        name="full",
        label="Full FT",
        default_rank=None,
        param_count=lambda shapes, rank: sum(d * k + d for d, k in shapes),
        adapter=None,
        reference="full fine-tuning: weights and biases of every layer",
    )
)
