"""A PEFT LoRA adapter written as a GGUF LoRA adapter, the format llama.cpp loads beside its base model.

The file says it is an adapter (``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``)
for the base's architecture, and holds for each adapted weight two tensors named after llama.cpp's name of that
weight: ``<name>.lora_a`` (rank × inputs) and ``<name>.lora_b`` (outputs × rank). llama.cpp scales the product
by alpha / rank, as PEFT does. The names come from the ``gguf`` package's own map of Hugging Face names.

One subtlety: llama.cpp stores the query and key projections of the llama architecture with their rows
permuted (its rotary embedding pairs dimensions differently), and transformers undoes that permutation when it
reads the GGUF base. The adapter was trained in transformers' order, so the rows of ``lora_b`` of those two
projections get the same permutation the base's weights have in the file.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

_LORA = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])\.weight$")
# Architectures whose query/key rows llama.cpp permutes (and transformers' GGUF reader un-permutes).
_PERMUTED = frozenset({"llama"})


def write_lora_gguf(adapter_dir: Path, *, base_gguf: Path, out: Path) -> Path:
    """Write the PEFT adapter of ``adapter_dir`` (trained on ``base_gguf``) as a GGUF LoRA adapter at ``out``."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    if config.get("use_rslora") or config.get("use_dora"):
        raise ValueError("llama.cpp's LoRA adapters support neither rsLoRA nor DoRA")
    base = _BaseModel(base_gguf)
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for name, tensor in load_file(adapter_dir / "adapter_model.safetensors").items():
        match = _LORA.match(name)
        if match is None:
            raise ValueError(f"unexpected tensor in the adapter: {name}")
        pairs.setdefault(match["module"], {})[match["part"]] = tensor.astype(np.float32)
    writer = gguf.GGUFWriter(str(out), base.architecture)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    for module, parts in sorted(pairs.items()):
        target = base.tensor_name(module)
        lora_b = parts["B"]
        if base.architecture in _PERMUTED and target.endswith((".attn_q", ".attn_k")):
            heads = base.heads if target.endswith(".attn_q") else base.kv_heads
            lora_b = _permute_rows(lora_b, heads)
        writer.add_tensor(f"{target}.weight.lora_a", parts["A"])
        writer.add_tensor(f"{target}.weight.lora_b", lora_b)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


class _BaseModel:
    """What the adapter needs to know of its base GGUF: architecture, heads, layers, and tensor names."""

    def __init__(self, path: Path) -> None:
        reader = gguf.GGUFReader(path)
        self.architecture = _value(reader, gguf.Keys.General.ARCHITECTURE)
        arch = self.architecture
        self.heads = int(_value(reader, gguf.Keys.Attention.HEAD_COUNT.format(arch=arch)))
        kv_key = gguf.Keys.Attention.HEAD_COUNT_KV.format(arch=arch)
        self.kv_heads = int(_value(reader, kv_key)) if kv_key in reader.fields else self.heads
        layers = int(_value(reader, gguf.Keys.LLM.BLOCK_COUNT.format(arch=arch)))
        by_name = {name: kind for kind, name in gguf.MODEL_ARCH_NAMES.items()}
        if arch not in by_name:
            raise ValueError(f"the gguf package does not know the architecture {arch!r}")
        self._names = gguf.get_tensor_name_map(by_name[arch], layers)
        self._tensors = {tensor.name for tensor in reader.tensors}

    def tensor_name(self, module: str) -> str:
        """llama.cpp's name of a module's weight: ``model.layers.0.self_attn.q_proj`` → ``blk.0.attn_q``."""
        name = self._names.get_name(module)
        if name is None or f"{name}.weight" not in self._tensors:
            raise ValueError(f"the base model has no weight for {module}")
        return name


def _value(reader: gguf.GGUFReader, key: str) -> str | int:
    return reader.fields[key].contents()


def _permute_rows(weights: np.ndarray, heads: int) -> np.ndarray:
    """llama.cpp's order of a query/key projection's output rows: in each head, the two halves interleaved."""
    rows = weights.shape[0]
    return weights.reshape(heads, 2, rows // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)
