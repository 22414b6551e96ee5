"""A vLLM plugin that keeps torch.compile on for LoRA serving on CPU (setting ``vllm_compile_lora``).

mentee's vLLM server passes the setting to vLLM's processes as ``MENTEE_VLLM_COMPILE_LORA=1`` (the setting's own
environment variable).

vLLM's CPU platform turns torch.compile off whenever LoRA is enabled (``platforms/cpu.py``: ``if
vllm_config.lora_config is not None: compilation_config.mode = CompilationMode.NONE``), because its CPU LoRA
path (``PunicaWrapperCPU``) branches in Python on per-step state — prefill or decode, any adapter in the batch —
and vLLM's CPU compilation traces the model once and drops every guard: whatever branch the trace took would be
baked in. Every request then runs the model eagerly, base-model requests included.

This plugin keeps the compilation vLLM chooses without LoRA, and hides the LoRA part of each linear layer from
the trace instead, as vLLM itself does for attention and for its GPU dual-stream LoRA path: one custom op per
call, ``torch.ops.vllm.mentee_lora_to_output(layer_name, x, output)``, that looks the layer up by name and runs
vLLM's own ``_apply_lora_to_output`` eagerly, with the step's real metadata. The base layer's
GEMM and everything between the layers stay in the compiled graph.

Only the linear layers are covered: the server must restrict LoRA to them (``--lora-target-modules``), or the
plugin leaves vLLM's choice (compile off) alone and says so. vLLM loads the plugin in each of its processes
(entry point ``vllm.general_plugins``); without the environment variable it does nothing, so another vLLM in the
same environment is untouched.
"""

# No ``from __future__ import annotations``: torch infers the custom op's schema from its real annotations.
import logging
import os
import weakref
from typing import Any

logger = logging.getLogger(__name__)

ENABLE_ENV = "MENTEE_VLLM_COMPILE_LORA"
OP_NAME = "mentee_lora_to_output"
# The op's layers by name, in this vLLM process: an op's arguments are tensors, numbers and strings, not modules.
# vLLM keeps its own such table in the forward context; this one does not depend on which config is current
# while the LoRA layers are built. Weak: a model that is dropped takes its layers with it.
_LAYERS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
# Layers whose LoRA path the op does not cover: a server that may wrap them keeps vLLM's compile-off choice.
_UNCOVERED = ("embed_tokens", "lm_head")


def register() -> None:
    """vLLM's entry point: patch the CPU platform and the LoRA linear layers when asked to, once per process."""
    if os.environ.get(ENABLE_ENV) != "1":
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return  # vLLM compiles LoRA serving itself on GPUs
    from vllm.lora.layers.base_linear import BaseLinearLayerWithLoRA
    from vllm.platforms.cpu import CpuPlatform

    if getattr(CpuPlatform, "_mentee_compile_lora", False):
        return
    _keep_compilation_with_lora(CpuPlatform)
    _register_op()
    _route_lora_through_op(BaseLinearLayerWithLoRA)
    CpuPlatform._mentee_compile_lora = True  # type: ignore[attr-defined]


def _covered(lora_config: Any) -> bool:
    targets = getattr(lora_config, "target_modules", None)
    return bool(targets) and not any(name in target for target in targets for name in _UNCOVERED)


def _keep_compilation_with_lora(platform: Any) -> None:
    original = platform.check_and_update_config.__func__

    def check_and_update_config(cls: Any, vllm_config: Any) -> None:
        lora_config = vllm_config.lora_config
        if lora_config is None or not _covered(lora_config):
            if lora_config is not None:
                logger.warning("%s: LoRA not restricted to linear layers; torch.compile stays off", ENABLE_ENV)
            original(cls, vllm_config)
            return
        # The platform's choice as if LoRA were off; the rest of its checks do not read lora_config.
        vllm_config.lora_config = None
        try:
            original(cls, vllm_config)
        finally:
            vllm_config.lora_config = lora_config

    platform.check_and_update_config = classmethod(check_and_update_config)


def _register_op() -> None:
    import torch
    from vllm.lora.layers.base_linear import BaseLinearLayerWithLoRA
    from vllm.utils.torch_utils import direct_register_custom_op

    eager = BaseLinearLayerWithLoRA._apply_lora_to_output

    def lora_to_output(layer_name: str, x: torch.Tensor, output: torch.Tensor) -> None:
        result = eager(_LAYERS[layer_name], x, output)
        if result.data_ptr() != output.data_ptr():  # a platform that cannot add in place returned a new tensor
            output.copy_(result.view_as(output))

    def lora_to_output_fake(layer_name: str, x: torch.Tensor, output: torch.Tensor) -> None:
        return None

    direct_register_custom_op(
        op_name=OP_NAME, op_func=lora_to_output, mutates_args=["output"], fake_impl=lora_to_output_fake
    )


def _route_lora_through_op(layer_class: Any) -> None:
    import torch
    from vllm.forward_context import is_forward_context_available

    original_init = layer_class.__init__
    eager = layer_class._apply_lora_to_output

    def __init__(self: Any, base_layer: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, base_layer, *args, **kwargs)
        self._mentee_lora_name = f"{getattr(base_layer, 'prefix', '')}#{id(self)}"
        _LAYERS[self._mentee_lora_name] = self

    def _apply_lora_to_output(self: Any, x: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        # Outside a model step (no forward context: vLLM's own eager calls) there is nothing to hide from a trace.
        if not is_forward_context_available():
            return eager(self, x, output)
        getattr(torch.ops.vllm, OP_NAME)(self._mentee_lora_name, x, output)
        return output

    layer_class.__init__ = __init__
    layer_class._apply_lora_to_output = _apply_lora_to_output
