"""API key format: public id to find the row, a 256-bit secret of which only a hash is kept."""
from __future__ import annotations

from socle.identity import keys


def test_a_new_key_parses_back_and_matches_its_hash() -> None:
    full, public_id, secret_hash = keys.new_key()
    parsed = keys.parse(full)
    assert parsed is not None and parsed.public_id == public_id
    assert keys.secret_matches(parsed.secret, secret_hash)
    assert parsed.secret not in secret_hash and len(secret_hash) == 64
    assert len(parsed.secret) >= 43  # 32 random bytes, url-safe


def test_keys_are_unique() -> None:
    assert len({keys.new_key()[0] for _ in range(1000)}) == 1000


def test_foreign_or_malformed_tokens_are_refused() -> None:
    for token in ("", "sk-proj-abc", "sk-socle-", "sk-socle-0123456789ab", "sk-socle-0123456789abXsecret",
                  "sk-socle-0123456789ab_" + "x" * 300):
        assert keys.parse(token) is None, token


def test_a_wrong_secret_does_not_match() -> None:
    _, _, secret_hash = keys.new_key()
    assert not keys.secret_matches("guess", secret_hash)
