"""Checking a fine-tuning file before anything trains on it, and estimating what the training will cost.

A training file is JSONL in the chat format, one example a line: ``{"messages": [{"role": ..., "content": ...}]}``
with roles ``system`` (first only), ``user`` and ``assistant``, non-empty text, and an assistant's message last
(what the model learns to write). Every problem names its line, in English for the API and in French for the
pages; the legacy ``prompt``/``completion`` shape is refused with a message that says what to write instead.
Token counts use the model's own tokenizer when it is the embedded llama.cpp model, else a deliberately high
estimate: a count too low would let an example through that the model cannot hold.
"""
from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("system", "user", "assistant")
MESSAGE_OVERHEAD = 5
"""Tokens a chat template adds around each message (``<|im_start|>role\\n ... <|im_end|>\\n``)."""
MAX_ERRORS = 50
"""Errors kept for one file: enough to fix a file, bounded whatever the file holds."""
_NOT_CHAT = ('the legacy "prompt"/"completion" format is not accepted: write each example as '
             '{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}',
             "l'ancien format « prompt » / « completion » n'est pas accepté : écrivez chaque exemple sous la forme "
             "{\"messages\": [{\"role\": \"user\", \"content\": …}, {\"role\": \"assistant\", \"content\": …}]}")


@dataclass(frozen=True)
class LineError:
    """A problem of one line (``line`` 0: the whole file); ``message`` for the API, ``message_fr`` for the pages."""

    line: int
    message: str
    message_fr: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "message": self.message, "message_fr": self.message_fr}


@dataclass(frozen=True)
class TrainingData:
    """The examples that passed (messages reduced to role and content), their tokens, and every problem found
    (at most :data:`MAX_ERRORS`; ``error_count`` counts them all)."""

    examples: list[list[dict[str, str]]]
    tokens: int
    errors: list[LineError]
    error_count: int = field(default=0)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.examples)

    def summary(self, limit: int = 3) -> str:
        """The first problems in one English sentence (a file's ``status_details``)."""
        shown = "; ".join(_where(error) + error.message for error in self.errors[:limit])
        more = self.error_count - limit
        return shown + (f" (and {more} more)" if more > 0 else "")


@dataclass(frozen=True)
class Estimate:
    examples: int
    tokens: int
    trained_tokens: int
    seconds: float
    cost_eur: float

    def as_dict(self) -> dict[str, Any]:
        return {"examples": self.examples, "tokens": self.tokens, "trained_tokens": self.trained_tokens,
                "seconds": round(self.seconds, 1), "cost_eur": round(self.cost_eur, 4)}


class _Problem(Exception):
    def __init__(self, message: str, message_fr: str) -> None:
        super().__init__(message)
        self.message, self.message_fr = message, message_fr


def validate_training_file(content: bytes, *, count_tokens: Callable[[str], int], max_examples: int,
                           max_bytes: int, context_tokens: int) -> TrainingData:
    """Every line checked (CPU-bound with a real tokenizer: run it in a thread)."""
    errors: list[LineError] = []
    error_count = 0

    def problem(line: int, message: str, message_fr: str) -> None:
        nonlocal error_count
        error_count += 1
        if len(errors) < MAX_ERRORS:
            errors.append(LineError(line, message, message_fr))

    if len(content) > max_bytes:
        problem(0, f"The file exceeds {max_bytes} bytes.", f"Le fichier dépasse {max_bytes} octets.")
        return TrainingData([], 0, errors, error_count)
    examples: list[list[dict[str, str]]] = []
    tokens = 0
    for number, raw in enumerate(content.splitlines(), start=1):
        if not raw.strip():
            continue
        if len(examples) >= max_examples:
            problem(number, f"Too many examples: at most {max_examples} per file.",
                    f"Trop d'exemples : {max_examples} au plus par fichier.")
            break
        try:
            messages = _messages(raw)
            needed = sum(count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in messages)
            if needed > context_tokens:
                raise _Problem(f"the example holds about {needed} tokens, more than the model's context "
                               f"({context_tokens}): shorten it",
                               f"l'exemple compte environ {needed} jetons, plus que ce que le modèle peut lire "
                               f"d'un coup ({context_tokens}) : raccourcissez-le")
        except _Problem as exc:
            problem(number, exc.message, exc.message_fr)
            continue
        examples.append(messages)
        tokens += needed
    if not examples and not error_count:
        problem(0, "The file holds no example.", "Le fichier ne contient aucun exemple.")
    return TrainingData(examples, tokens, errors, error_count)


def _messages(raw: bytes) -> list[dict[str, str]]:
    """One line's example, or the first thing wrong with it."""
    try:
        example = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _Problem("the line is not UTF-8 text", "la ligne n'est pas du texte UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise _Problem(f"the line is not valid JSON ({exc.msg})",
                       "la ligne n'est pas un objet JSON valide (une accolade ou un guillemet manque ?)") from exc
    if not isinstance(example, dict):
        raise _Problem('the line must be a JSON object with a "messages" list',
                       "la ligne doit être un objet JSON avec une liste « messages »")
    if "messages" not in example:
        if "prompt" in example or "completion" in example:
            raise _Problem(*_NOT_CHAT)
        raise _Problem('the line has no "messages" list', "la ligne n'a pas de liste « messages »")
    messages = example["messages"]
    if not isinstance(messages, list) or not messages:
        raise _Problem('"messages" must be a non-empty list', "« messages » doit être une liste non vide")
    kept: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _Problem(f"message {index} is not an object", f"le message {index + 1} n'est pas un objet")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _Problem(f"message {index} has role {role!r}: the roles are system, user and assistant",
                           f"le message {index + 1} a le rôle « {role} » : les rôles sont system (consigne), "
                           "user (question) et assistant (réponse attendue)")
        if role == "system" and index != 0:
            raise _Problem(f"message {index}: a system message may only come first",
                           f"le message {index + 1} : la consigne (system) ne peut venir qu'en premier")
        if not isinstance(content, str) or not content.strip():
            raise _Problem(f"message {index} ({role}) has no text content",
                           f"le message {index + 1} ({role}) est vide")
        kept.append({"role": role, "content": content})
    if kept[-1]["role"] != "assistant":
        raise _Problem("the last message must be the assistant's (the answer the model learns)",
                       "le dernier message doit être la réponse attendue (rôle assistant)")
    if not any(m["role"] == "user" for m in kept):
        raise _Problem("the example has no user message", "l'exemple n'a pas de question (rôle user)")
    return kept


def estimate(data: TrainingData, *, n_epochs: int, tokens_per_s: float,
             price_per_1k_trained_tokens: float) -> Estimate:
    """What a training on ``data`` costs: every epoch reads every token once."""
    trained = data.tokens * n_epochs
    return Estimate(examples=len(data.examples), tokens=data.tokens, trained_tokens=trained,
                    seconds=trained / tokens_per_s if tokens_per_s > 0 else math.inf,
                    cost_eur=trained / 1000 * price_per_1k_trained_tokens)


def estimate_tokens(text: str) -> int:
    """A count on the high side for any tokenizer: one token per 2 bytes of UTF-8 (French text runs 2.7 to 3.3
    bytes a token with SmolLM2's small English vocabulary, about 4 with the large models' vocabularies)."""
    return math.ceil(len(text.encode("utf-8")) / 2)


def token_counter(backends: list[Any]) -> Callable[[str], int]:
    """The counter for a model served by ``backends`` (its catalogue entries): the GGUF file's own tokenizer when
    every backend is llama.cpp on one file, else :func:`estimate_tokens`."""
    paths = {_gguf_path(backend) for backend in backends}
    if len(paths) == 1 and None not in paths:
        return _llama_counter(next(iter(paths)))  # type: ignore[arg-type]
    return estimate_tokens


def _gguf_path(backend: Any) -> Path | None:
    if getattr(backend, "type", None) != "llamacpp":
        return None
    from socle.inference.backends.llamacpp import bundled_smollm2

    return (backend.path or bundled_smollm2()).resolve()


@functools.cache
def _llama_counter(path: Path) -> Callable[[str], int]:
    """The vocabulary alone of a GGUF file (no weights: loaded in well under a second), shared by every call."""
    from llama_cpp import Llama

    from socle.inference.backends.llamacpp import _LOADING

    with _LOADING:  # a load redirects the process's output: one at a time (see the llama.cpp backend)
        vocabulary = Llama(model_path=str(path), vocab_only=True, verbose=False)
    lock = threading.Lock()

    def count(text: str) -> int:
        with lock:
            return len(vocabulary.tokenize(text.encode("utf-8"), add_bos=False, special=False))
    return count


def _where(error: LineError) -> str:
    return f"line {error.line}: " if error.line else ""
