"""LoRA supervised fine-tuning with PyTorch, transformers and PEFT, in the training child process.

The loop is written out rather than delegated to a trainer class because what it owes the platform is
precise: a checkpoint is the adapter, the optimizer, the scheduler, the random generators and the step,
written to a temporary folder then renamed (a checkpoint folder is complete or absent); the data order of
each epoch is drawn from ``seed`` and the epoch alone, so a run resumed from a checkpoint goes on exactly as
the uninterrupted run would have. The loss is the model's on the assistant's tokens only (the rest of the
conversation, rendered with the model's own chat template, is context), as in supervised fine-tuning.

A GGUF base (the bundled SmolLM2) is read by transformers, which dequantises it, with its tokenizer; a
Hugging Face model directory is read as it is (bf16 on a GPU). Nothing comes from a model hub.
"""
from __future__ import annotations

import math
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

from socle.finetuning.engine import TrainingSpec

BASE_LEARNING_RATE = 2e-4  # times the job's learning_rate_multiplier
TARGET_MODULES = ["q_proj", "v_proj"]
CHECKPOINTS_KEPT = 3
IGNORED = -100  # the label of a token that is not learnt (transformers' convention)

Emit = Callable[..., None]
Example = tuple[list[int], list[int]]  # token ids, labels


def run(spec: TrainingSpec, emit: Emit) -> None:
    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")
    hp = spec.hyperparameters
    _seed_everything(hp.seed)
    tokenizer, model = load_base(spec.base, device)
    train = _encode_all(tokenizer, spec.train, spec.max_tokens)
    valid = _encode_all(tokenizer, spec.validation, spec.max_tokens) if spec.validation else None
    model = get_peft_model(model, LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=0.0,
                                             target_modules=TARGET_MODULES, task_type="CAUSAL_LM"))
    per_epoch = math.ceil(len(train) / hp.batch_size)
    total = per_epoch * hp.n_epochs
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=BASE_LEARNING_RATE * hp.learning_rate_multiplier)
    scheduler = get_linear_schedule_with_warmup(optimizer, min(10, total // 10), total)
    checkpoints = spec.workdir / "checkpoints"
    state = {"step": 0, "trained_tokens": 0, "train_loss": math.nan, "valid_loss": None, "seconds": 0.0}
    latest = latest_checkpoint(checkpoints)
    if latest is not None:
        state = _restore(latest, model, optimizer, scheduler)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    losses: list[float] = []
    model.train()
    started = time.monotonic()  # the training's time, without the model's loading
    for step in range(state["step"] + 1, total + 1):
        epoch, position = divmod(step - 1, per_epoch)
        order = _epoch_order(len(train), hp.seed, epoch)
        batch = [train[i] for i in order[position * hp.batch_size:(position + 1) * hp.batch_size]]
        inputs = _collate(batch, pad, device)
        loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss))
        state["step"] = step
        state["trained_tokens"] += int(inputs["attention_mask"].sum())
        ends_period = step % spec.checkpoint_every == 0 or step == total
        if ends_period:
            state["train_loss"] = sum(losses) / len(losses)
            state["valid_loss"] = _evaluate(model, valid, hp.batch_size, pad, device) if valid else None
            losses = []
        emit("progress", step=step, total_steps=total, epoch=step / per_epoch, train_loss=float(loss),
             valid_loss=state["valid_loss"] if ends_period else None, trained_tokens=state["trained_tokens"])
        if ends_period:
            state["seconds"] += time.monotonic() - started
            started = time.monotonic()
            path = _save_checkpoint(checkpoints, model, optimizer, scheduler, state)
            emit("checkpoint", step=step, path=str(path), train_loss=state["train_loss"],
                 valid_loss=state["valid_loss"])
    state["seconds"] += time.monotonic() - started
    adapter_dir = spec.workdir / "adapter"
    model.save_pretrained(adapter_dir)
    adapter_gguf = None
    if spec.base.is_file():
        from socle.finetuning.gguf_adapter import write_lora_gguf

        adapter_gguf = write_lora_gguf(adapter_dir, base_gguf=spec.base, out=spec.workdir / "adapter.gguf")
    emit("result", adapter_gguf=adapter_gguf and str(adapter_gguf), adapter_dir=str(adapter_dir), steps=total,
         trained_tokens=state["trained_tokens"], train_loss=state["train_loss"], valid_loss=state["valid_loss"],
         seconds=state["seconds"])


def load_base(base: Path, device: str) -> tuple[Any, Any]:
    """The tokenizer and the model: from a GGUF file (dequantised, float32) or a model directory."""
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    if base.is_file():
        source, extra = str(base.parent), {"gguf_file": base.name}
    else:
        source, extra = str(base), {}
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True, **extra)
    model = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, dtype=dtype, **extra)
    return tokenizer, model.to(device)


def encode(tokenizer: Any, messages: list[dict[str, str]], max_tokens: int) -> Example:
    """A conversation's token ids (the model's chat template) and its labels: the assistant's turns only."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] == "assistant":
            before = (tokenizer.apply_chat_template(messages[:k], tokenize=False, add_generation_prompt=True)
                      if k else "")
            through = tokenizer.apply_chat_template(messages[:k + 1], tokenize=False)
            spans.append((len(os.path.commonprefix([before, through])), len(os.path.commonprefix([through, text]))))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                        max_length=max_tokens)
    ids = encoded["input_ids"]
    labels = [token if any(start <= offset < end for start, end in spans) else IGNORED
              for token, (offset, _) in zip(ids, encoded["offset_mapping"])]
    return ids, labels


def _encode_all(tokenizer: Any, examples: list[list[dict[str, str]]], max_tokens: int) -> list[Example]:
    encoded = [encode(tokenizer, messages, max_tokens) for messages in examples]
    kept = [example for example in encoded if any(label != IGNORED for label in example[1])]
    if not kept:
        raise ValueError(f"No example has an assistant answer within the first {max_tokens} tokens.")
    return kept


def _collate(batch: list[Example], pad: int, device: str) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in batch)
    ids = [ids + [pad] * (width - len(ids)) for ids, _ in batch]
    labels = [labels + [IGNORED] * (width - len(labels)) for _, labels in batch]
    mask = [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch]
    return {"input_ids": torch.tensor(ids, device=device), "labels": torch.tensor(labels, device=device),
            "attention_mask": torch.tensor(mask, device=device)}


@torch.no_grad()
def _evaluate(model: Any, examples: list[Example], batch_size: int, pad: int, device: str) -> float:
    """The mean loss per learnt token on the validation examples."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        inputs = _collate(examples[start:start + batch_size], pad, device)
        tokens = int((inputs["labels"][:, 1:] != IGNORED).sum())
        total += float(model(**inputs).loss) * tokens
        count += tokens
    model.train()
    return total / max(count, 1)


def _epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(size, generator=generator).tolist()


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The checkpoint of the highest step (folders only appear complete: see :func:`_save_checkpoint`)."""
    done = [path for path in checkpoints.glob("*") if path.name.isdigit()] if checkpoints.is_dir() else []
    return max(done, key=lambda path: int(path.name), default=None)


def _save_checkpoint(checkpoints: Path, model: Any, optimizer: Any, scheduler: Any, state: dict[str, Any]) -> Path:
    target = checkpoints / f"{state['step']:07d}"
    partial = checkpoints / f".partial-{state['step']}"
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial / "adapter")
    torch.save({"state": state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}},
               partial / "state.pt")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    for old in sorted(checkpoints.glob("[0-9]*"), key=lambda path: int(path.name))[:-CHECKPOINTS_KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _restore(checkpoint: Path, model: Any, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    saved = torch.load(checkpoint / "state.pt", weights_only=False)  # written by this module
    set_peft_model_state_dict(model, load_file(checkpoint / "adapter" / "adapter_model.safetensors"))
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"]["torch"])
    random.setstate(saved["rng"]["python"])
    np.random.set_state(saved["rng"]["numpy"])
    if saved["rng"]["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    return saved["state"]
