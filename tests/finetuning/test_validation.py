"""Training files checked line by line, token counts with the embedded model's own tokenizer, and the estimate."""
from __future__ import annotations

import json

from socle.finetuning.validation import (
    MAX_ERRORS,
    MESSAGE_OVERHEAD,
    LineError,
    TrainingData,
    estimate,
    estimate_tokens,
    token_counter,
    validate_training_file,
)
from socle.settings import DEFAULT_CATALOGUE, ModelConfig


def line(*messages: tuple[str, object], **extra: object) -> bytes:
    return json.dumps({"messages": [{"role": r, "content": c} for r, c in messages], **extra},
                      ensure_ascii=False).encode()


def check(content: bytes, **limits: int) -> TrainingData:
    bounds = {"max_examples": 100, "max_bytes": 1_000_000, "context_tokens": 4096, **limits}
    return validate_training_file(content, count_tokens=lambda text: len(text.split()), **bounds)


def test_good_examples_pass_with_their_tokens() -> None:
    data = check(b"\n".join([line(("system", "Sois bref."), ("user", "Bonjour à tous"), ("assistant", "Salut")),
                             b"", line(("user", "Une question"), ("assistant", "Une réponse"), weight=1)]) + b"\n")
    assert data.ok and data.errors == [] and data.error_count == 0
    assert data.examples[1] == [{"role": "user", "content": "Une question"},
                                {"role": "assistant", "content": "Une réponse"}]
    assert data.tokens == (2 + 3 + 1 + 3 * MESSAGE_OVERHEAD) + (2 + 2 + 2 * MESSAGE_OVERHEAD)


def test_each_problem_names_its_line_in_english_and_in_french() -> None:
    cases = {
        b"not json": "the line is not valid JSON",
        b'["a list"]': 'the line must be a JSON object with a "messages" list',
        b'{"prompt": "a", "completion": "b"}': 'the legacy "prompt"/"completion" format is not accepted',
        b'{"text": "a"}': 'the line has no "messages" list',
        b'{"messages": []}': '"messages" must be a non-empty list',
        line(("user", "q"), ("tool", "x"), ("assistant", "r")): "message 1 has role 'tool'",
        line(("user", "q"), ("system", "s"), ("assistant", "r")): "message 1: a system message may only come first",
        line(("user", "q"), ("assistant", "")): "message 1 (assistant) has no text content",
        line(("user", ["q"]), ("assistant", "r")): "message 0 (user) has no text content",
        line(("user", "q"), ("assistant", "r"), ("user", "q2")): "the last message must be the assistant's",
        line(("system", "s"), ("assistant", "r")): "the example has no user message",
        b"\xff\xfe": "the line is not UTF-8 text",
    }
    data = check(b"\n".join(cases))
    assert data.examples == [] and data.error_count == len(cases)
    for number, (error, expected) in enumerate(zip(data.errors, cases.values(), strict=True), start=1):
        assert error.line == number and error.message.startswith(expected), (error, expected)
        assert error.message_fr and error.message_fr != error.message
    legacy = data.errors[2]
    assert '{"messages": [{"role": "user"' in legacy.message and "ancien format" in legacy.message_fr
    assert data.summary().startswith("line 1: the line is not valid JSON") and "(and 9 more)" in data.summary()


def test_limits_of_size_count_and_context() -> None:
    good = line(("user", "q"), ("assistant", "r"))
    assert check(good * 0 + b"\n".join([good] * 3), max_bytes=10).errors == [
        LineError(0, "The file exceeds 10 bytes.", "Le fichier dépasse 10 octets.")]
    over = check(b"\n".join([good] * 5), max_examples=3)
    assert len(over.examples) == 3 and [(e.line, e.message) for e in over.errors] == [
        (4, "Too many examples: at most 3 per file.")]
    long = check(line(("user", "mot " * 50), ("assistant", "r")), context_tokens=40)
    assert long.errors[0].line == 1 and "more than the model's context (40)" in long.errors[0].message
    assert check(b"\n\n").errors == [LineError(0, "The file holds no example.",
                                               "Le fichier ne contient aucun exemple.")]
    many = check(b"\n".join([b"nope"] * (MAX_ERRORS + 7)))
    assert len(many.errors) == MAX_ERRORS and many.error_count == MAX_ERRORS + 7


def test_the_embedded_model_counts_with_its_own_tokenizer() -> None:
    embedded = next(model for model in DEFAULT_CATALOGUE.models if model.id == "smollm2-135m")
    count = token_counter(embedded.backends)
    assert count is not estimate_tokens
    assert count("The capital of France is Paris.") == 7  # SmolLM2's BPE: one token a word, and the dot
    assert count("") == 0
    remote = ModelConfig(id="remote", type="chat", backends=[{"type": "openai", "url": "http://127.0.0.1:9/v1"}])
    assert token_counter(remote.backends) is estimate_tokens
    assert estimate_tokens("Le délai est de trois semaines.") >= count("Le délai est de trois semaines.")


def test_estimate_multiplies_by_the_epochs() -> None:
    data = check(b"\n".join([line(("user", "a b c"), ("assistant", "d e"))] * 4))
    assert data.tokens == 4 * (5 + 2 * MESSAGE_OVERHEAD)
    guess = estimate(data, n_epochs=3, tokens_per_s=80.0, price_per_1k_trained_tokens=0.5)
    assert (guess.examples, guess.tokens, guess.trained_tokens) == (4, 60, 180)
    assert guess.seconds == 180 / 80.0 and guess.cost_eur == 0.09
    assert guess.as_dict() == {"examples": 4, "tokens": 60, "trained_tokens": 180, "seconds": 2.2, "cost_eur": 0.09}
