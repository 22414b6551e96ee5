"""A tiny random Gemma-3 text model and tokenizer, built locally (no hub), for anything that serves or trains."""

from __future__ import annotations

import json
from pathlib import Path

# Words the tokenizer learns; questions in tests use them so prompts tokenize into few, known pieces.
_CORPUS = """
Q: What is the capital of France? A: Paris
Q: What is the capital of Italy? A: Rome
Q: Who wrote the play Hamlet? A: William Shakespeare
Q: How many legs does a spider have? A: Eight
the quick brown fox jumps over the lazy dog 0 1 2 3 4 5 6 7 8 9
who what when where why how which is was are were the a an of in on at to for with by from
"""


def build_tiny_gemma(folder: Path, *, chat_template: bool = False, seed: int = 0) -> Path:
    """Write a few-M-parameter random Gemma-3 causal LM with a trained BPE tokenizer into ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, GenerationConfig, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    if chat_template:
        fast.chat_template = (
            "{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}"
        )
    fast.save_pretrained(folder)

    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=len(fast),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=2048,
        sliding_window=256,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=2,
    )
    model = Gemma3ForCausalLM(config).to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=2, eos_token_id=1, pad_token_id=0)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def build_random_lora(model_folder: Path, adapter_folder: Path, *, rank: int = 8, seed: int = 1) -> Path:
    """A peft LoRA adapter for the tiny model whose weights are random (not the zero init), so it changes output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_folder, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.5)
    peft_model.save_pretrained(adapter_folder)
    assert json.loads((adapter_folder / "adapter_config.json").read_text())["r"] == rank
    return adapter_folder
