"""A vLLM plugin: CPU LoRA ops that run one matrix product per adapter run of tokens (setting ``vllm_segmented_lora``).

vLLM's CPU LoRA path (``PunicaWrapperCPU``, always its "prefill" ops under the V1 engine) applies an adapter with
``vllm.lora.ops.torch_ops``: it expands the batch's adapter index to one per token and gathers *each token's own
copy* of the adapter's matrices (``lora_weights[per_token_index]``: tokens x out x in) for a batched
matrix-vector product. A 200-token prompt through one rank-16 adapter copies 200 x 16 x 2048 floats per layer and
matrix; eight of them at once spend more time copying weights than the base model spends computing. Tokens of a
base-model request (index -1) are computed too, through whatever adapter sits in the last slot (Python's -1).

vLLM already groups the batch into runs of consecutive tokens with one adapter (``compute_meta``: start, length,
slot per run). These ops use those runs as they are: one ``x[run] @ W[slot].T`` per run, and nothing for a
base-model run. Same numbers as vLLM's ops (the unit test compares them), without the per-token copies.

mentee's vLLM server passes the setting to vLLM's processes as ``MENTEE_VLLM_SEGMENTED_LORA=1`` (the setting's own
environment variable). vLLM loads the plugin in each of its processes (entry point ``vllm.general_plugins``);
without the variable it does nothing, so another vLLM in the same environment is untouched.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# Runs inside vLLM's processes: under vLLM's logger, its line lands in vLLM's log (and mentee's copy of it).
logger = logging.getLogger(f"vllm.{__name__}")

ENABLE_ENV = "MENTEE_VLLM_SEGMENTED_LORA"
_PATCHED_FLAG = "_mentee_segmented_lora"


def register() -> None:
    """vLLM's entry point: swap the CPU LoRA wrapper's prefill ops for these, when asked to, once per process."""
    if os.environ.get(ENABLE_ENV, "").strip().lower() not in {"1", "true"}:
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return  # GPU builds run vLLM's own kernels
    from vllm.lora.punica_wrapper import punica_cpu

    if getattr(punica_cpu, _PATCHED_FLAG, False):
        return
    # PunicaWrapperCPU calls these through its module's globals at each call: replacing them there is enough.
    punica_cpu.sgmv_shrink = sgmv_shrink
    punica_cpu.sgmv_expand = sgmv_expand
    punica_cpu.sgmv_expand_slice = sgmv_expand_slice
    setattr(punica_cpu, _PATCHED_FLAG, True)
    logger.info("mentee's segmented LoRA ops serve this vLLM process's adapters")


def _runs(starts: torch.Tensor, lengths: torch.Tensor, slots: torch.Tensor) -> list[tuple[slice, int]]:
    """(rows, adapter slot) for each run of tokens vLLM grouped under one adapter; -1 is the base model."""
    return [
        (slice(start, start + length), slot)
        for start, length, slot in zip(starts.tolist(), lengths.tolist(), slots.tolist(), strict=True)
        if length > 0
    ]


def _matrix(stacked: torch.Tensor, slot: int) -> torch.Tensor:
    """One slot's matrix (out x in) from vLLM's stacked weights (slots x 1 x out x in, or slots x out x in)."""
    weights = stacked[slot]
    return weights.squeeze(0) if weights.dim() == 3 else weights


def sgmv_shrink(
    inputs: torch.Tensor,
    lora_a_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    b_seq_start_loc: torch.Tensor,
    seq_len_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    batches: int,
    max_seq_length: int,
    token_nums: int,
    scaling: float,
) -> None:
    """``output[:, :rank] = scaling * x @ A[slot].T`` per run; zeros for base-model runs."""
    dtype = output_tensor.dtype
    for rows, slot in _runs(b_seq_start_loc, seq_len_tensor, lora_indices_tensor):
        if slot < 0:
            output_tensor[rows, : lora_a_weights.shape[-2]] = 0
            continue
        matrix = _matrix(lora_a_weights, slot).to(dtype)
        output_tensor[rows, : matrix.shape[0]] = scaling * (inputs[rows].to(dtype) @ matrix.T)


def sgmv_expand(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    b_seq_start_loc: torch.Tensor,
    seq_len_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    batches: int,
    max_seq_length: int,
    token_nums: int,
    add_inputs: bool = False,
) -> None:
    """``output[:, :out] (+)= x @ B[slot].T`` per run (the common width, as vLLM's op: padding may differ)."""
    width = min(lora_b_weights.shape[-2], output_tensor.shape[1])
    runs = _runs(b_seq_start_loc, seq_len_tensor, lora_indices_tensor)
    _expand_runs(inputs, lora_b_weights, output_tensor, runs, slice(0, width), add_inputs, product_width=width)


def sgmv_expand_slice(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    b_seq_start_loc: torch.Tensor,
    seq_len_tensor: torch.Tensor,
    lora_indices_tensor: torch.Tensor,
    batches: int,
    max_seq_length: int,
    token_nums: int,
    slice_offset: int,
    slice_size: int,
    add_inputs: bool = False,
) -> None:
    """``output[:, offset:offset + size] (+)= x @ B[slot].T`` per run: one slice of a fused layer (q, k, v...)."""
    columns = slice(slice_offset, slice_offset + slice_size)
    runs = _runs(b_seq_start_loc, seq_len_tensor, lora_indices_tensor)
    _expand_runs(inputs, lora_b_weights, output_tensor, runs, columns, add_inputs)


def _expand_runs(
    inputs: torch.Tensor,
    lora_b_weights: torch.Tensor,
    output_tensor: torch.Tensor,
    runs: list[tuple[slice, int]],
    columns: slice,
    add_inputs: bool,
    product_width: int | None = None,
) -> None:
    """``output[run, columns] (+)= x[run] @ B[slot].T`` for each run (the product cut to ``product_width`` when
    given); a base-model run adds nothing, or is zeroed when the output is overwritten."""
    dtype = output_tensor.dtype
    for rows, slot in runs:
        if slot < 0:
            if not add_inputs:
                output_tensor[rows, columns] = 0
            continue
        product = inputs[rows].to(dtype) @ _matrix(lora_b_weights, slot).to(dtype).T
        if product_width is not None:
            product = product[:, :product_width]
        if add_inputs:
            output_tensor[rows, columns] += product
        else:
            output_tensor[rows, columns] = product
