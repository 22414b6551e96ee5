"""mentee's segmented CPU LoRA ops give vLLM's own ops' numbers, and the plugin installs them only when asked."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("vllm.lora.ops.torch_ops")

from vllm.lora.ops import torch_ops  # noqa: E402
from vllm.lora.punica_wrapper import punica_cpu  # noqa: E402
from vllm.lora.punica_wrapper.utils import compute_meta  # noqa: E402

from mentee.server.student import vllm_lora_ops  # noqa: E402

SLOTS, RANK, HIDDEN, OUT = 4, 16, 64, 96


def _batch(per_token: list[int]) -> tuple[torch.Tensor, ...]:
    """vLLM's run metadata for a batch whose tokens carry these adapter slots (-1: the base model)."""
    starts, lengths, slots, batches, longest, tokens, _ = compute_meta(torch.tensor(per_token))
    return starts, lengths, slots, batches, longest, tokens


def _stacked(rows: int, columns: int, generator: torch.Generator) -> torch.Tensor:
    """Weights as vLLM stacks them (slots x 1 x rows x columns), the last slot empty as mentee keeps it."""
    weights = torch.randn(SLOTS, 1, rows, columns, generator=generator)
    weights[-1] = 0
    return weights


# Mixed batches: one adapter, two adapters interleaved with base-model requests, base-model tokens only at the ends.
BATCHES = [
    [0] * 7,
    [-1] * 3 + [1] * 5 + [0] * 4 + [-1] * 2 + [1] * 6,
    [2] * 1 + [-1] * 9,
]


@pytest.mark.parametrize("per_token", BATCHES)
def test_shrink_and_expand_match_vllms_ops(per_token: list[int]) -> None:
    generator = torch.Generator().manual_seed(len(per_token))
    meta = _batch(per_token)
    x = torch.randn(len(per_token), HIDDEN, generator=generator, dtype=torch.bfloat16)
    a = _stacked(RANK, HIDDEN, generator).to(torch.bfloat16)
    b = _stacked(OUT, RANK, generator).to(torch.bfloat16)

    theirs, ours = (torch.zeros(len(per_token), RANK) for _ in range(2))
    torch_ops.sgmv_shrink(x, a, theirs, *meta, 0.5)
    vllm_lora_ops.sgmv_shrink(x, a, ours, *meta, 0.5)
    torch.testing.assert_close(ours, theirs)

    base = torch.randn(len(per_token), OUT + 8, generator=generator, dtype=torch.bfloat16)
    for add_inputs in (True, False):
        theirs_y, ours_y = base.clone(), base.clone()
        torch_ops.sgmv_expand(theirs, b, theirs_y, *meta, add_inputs)
        vllm_lora_ops.sgmv_expand(ours, b, ours_y, *meta, add_inputs)
        torch.testing.assert_close(ours_y, theirs_y)

        theirs_y, ours_y = base.clone(), base.clone()
        torch_ops.sgmv_expand_slice(theirs, b, theirs_y, *meta, 4, OUT, add_inputs)
        vllm_lora_ops.sgmv_expand_slice(ours, b, ours_y, *meta, 4, OUT, add_inputs)
        torch.testing.assert_close(ours_y, theirs_y)


def test_base_model_tokens_get_nothing_even_from_a_filled_last_slot() -> None:
    """vLLM's ops read -1 as the last slot (mentee keeps it empty for that); these ops never touch it."""
    meta = _batch([-1, -1, 0, 0])
    x = torch.ones(4, HIDDEN)
    a = torch.ones(SLOTS, 1, RANK, HIDDEN)
    buffer = torch.full((4, RANK), 7.0)
    vllm_lora_ops.sgmv_shrink(x, a, buffer, *meta, 1.0)
    assert buffer[:2].abs().sum() == 0
    assert torch.all(buffer[2:] == HIDDEN)


def test_the_plugin_installs_the_ops_only_when_its_variable_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("sgmv_shrink", "sgmv_expand", "sgmv_expand_slice"):
        monkeypatch.setattr(punica_cpu, name, getattr(punica_cpu, name))  # restored after the test
    monkeypatch.setattr(punica_cpu, vllm_lora_ops._PATCHED_FLAG, False, raising=False)

    monkeypatch.delenv(vllm_lora_ops.ENABLE_ENV, raising=False)
    vllm_lora_ops.register()
    assert punica_cpu.sgmv_shrink is torch_ops.sgmv_shrink

    monkeypatch.setenv(vllm_lora_ops.ENABLE_ENV, "1")
    vllm_lora_ops.register()
    assert punica_cpu.sgmv_shrink is vllm_lora_ops.sgmv_shrink
    assert punica_cpu.sgmv_expand is vllm_lora_ops.sgmv_expand
    assert punica_cpu.sgmv_expand_slice is vllm_lora_ops.sgmv_expand_slice


def test_mentees_vllm_server_asks_for_the_ops_as_its_setting_says(tmp_path) -> None:
    from mentee.server.core.config import load_settings
    from mentee.server.student.vllm_server import VLLMServer

    for setting, value in ((True, "1"), (False, "0")):
        settings = load_settings(home=tmp_path / value, vllm_segmented_lora=setting)
        assert VLLMServer(settings, "model").environment()[vllm_lora_ops.ENABLE_ENV] == value
