"""Configuration: the YAML catalogue and SOCLE_* variables; errors name the faulty field."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from socle.settings import DEFAULT_CATALOGUE, ConfigError, Settings, load_catalogue
from tests.support.servers import SOCLE


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_without_a_file_the_embedded_defaults_are_served() -> None:
    catalogue = load_catalogue(None)
    assert catalogue is DEFAULT_CATALOGUE
    assert {(m.type, m.backends[0].type) for m in catalogue.models} == {("chat", "llamacpp"), ("embeddings", "e5"),
                                                                        ("rerank", "e5")}


def test_the_documented_shape_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_KEY", "secret")
    catalogue = load_catalogue(_write(tmp_path, """
models:
  - id: mistral-small
    type: chat
    routing: least-busy
    backends:
      - {type: openai, url: http://gpu1:8000/v1, model: mistralai/Mistral-Small-3.2, api_key_env: VLLM_KEY, timeout_s: 60, weight: 1}
      - {type: openai, url: http://gpu2:8000/v1/, model: mistralai/Mistral-Small-3.2}
  - {id: e5-small, type: embeddings, backends: [{type: e5}]}
"""))
    mistral = catalogue.models[0]
    assert [b.url for b in mistral.backends] == ["http://gpu1:8000/v1", "http://gpu2:8000/v1"]
    assert mistral.backends[0].api_key_env == "VLLM_KEY"


@pytest.mark.parametrize("text, names", [
    ("models:\n  - {id: m, type: chat, backends: [{type: openai, url: gpu1:8000}]}", "models[0].backends[0].url"),
    ("models:\n  - {id: m, type: vision, backends: [{type: e5}]}", "models[0].type"),
    ("models:\n  - {id: m, type: chat, backends: []}", "models[0].backends"),
    ("models:\n  - {id: m, type: chat, backends: [{type: quantum}]}", "models[0].backends[0]"),
    ("models:\n  - {id: m, type: chat, backends: [{type: e5, colour: red}]}", "models[0].backends[0].colour"),
    ("models:\n  - {id: m, type: chat, backends: [{type: openai, url: 'http://x/v1', api_key_env: NOT_SET_ANYWHERE}]}",
     "NOT_SET_ANYWHERE"),
    ("models:\n  - {id: m, type: chat, backends: [{type: e5}]}\n  - {id: m, type: chat, backends: [{type: e5}]}",
     "declared twice"),
    ("models: [", "not valid YAML"),
    ("- just a list", "mapping"),
])
def test_invalid_catalogue_names_the_faulty_field(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_catalogue(_write(tmp_path, text))
    assert names in str(error.value)


@pytest.mark.parametrize("url", ["http://user:s3cr3t@gpu1:8000/v1", "https://:s3cr3t@gpu1/v1",
                                 "https://s3cr3t@gpu1/v1"])
def test_a_backend_url_with_credentials_is_refused_without_repeating_them(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_catalogue(_write(tmp_path, f"models: [{{id: m, type: chat, backends: [{{type: openai, url: '{url}'}}]}}]"))
    message = str(error.value)
    assert "models[0].backends[0].url" in message and "api_key_env" in message
    assert "s3cr3t" not in message


def test_backends_are_known_by_a_public_label(tmp_path: Path) -> None:
    catalogue = load_catalogue(_write(tmp_path, """
models:
  - id: mistral-small
    type: chat
    backends: [{type: openai, url: http://gpu1:8000/v1}, {type: openai, url: http://gpu2:8000/v1, name: gpu-paris-2}]
"""))
    model = catalogue.models[0]
    assert [model.backend_label(i) for i in range(2)] == ["mistral-small#0", "gpu-paris-2"]
    with pytest.raises(ConfigError) as error:
        load_catalogue(_write(tmp_path, """
models:
  - {id: m, type: chat, backends: [{type: e5, name: same}, {type: e5, name: same}]}
"""))
    assert "same name" in str(error.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_catalogue(tmp_path / "nope.yaml")


def test_settings_come_from_socle_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOCLE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SOCLE_MAX_TOKENS_LIMIT", "77")
    settings = Settings()
    assert settings.max_tokens_limit == 77
    assert settings.admin_key_file == tmp_path / "admin.key"
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{(tmp_path / 'socle.db').resolve()}"


def test_serve_refuses_to_start_on_invalid_configuration(tmp_path: Path) -> None:
    config = _write(tmp_path, "models:\n  - {id: m, type: chat, routing: random, backends: [{type: e5}]}")
    env = {"SOCLE_CONFIG": str(config), "SOCLE_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([str(SOCLE), "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "models[0].routing" in result.stderr
    bad_port = subprocess.run([str(SOCLE), "serve"], env={**env, "SOCLE_CONFIG": "", "SOCLE_PORT": "ninety"},
                              capture_output=True, text=True, timeout=60)
    assert bad_port.returncode == 2 and "SOCLE_PORT" in bad_port.stderr


def test_each_model_has_a_card_from_the_catalogue_or_built_in(tmp_path: Path) -> None:
    catalogue = load_catalogue(_write(tmp_path, """
models:
  - id: mistral-small
    type: chat
    backends: [{type: openai, url: http://gpu1:8000/v1}]
    card: {provider: Mistral AI, license: Apache-2.0, intended_use: Rédaction administrative,
           limitations: Peut inventer des faits, languages: [fr, en], runs_on: Serveurs GPU du ministère}
  - {id: bare, type: chat, backends: [{type: openai, url: http://gpu2:8000/v1}]}
  - {id: smollm2-135m, type: chat, backends: [{type: llamacpp}]}
  - {id: e5, type: embeddings, backends: [{type: e5}]}
"""))
    mistral, bare, smollm2, e5 = catalogue.models
    assert mistral.model_card is not None and mistral.model_card.languages == ["fr", "en"]
    assert bare.model_card is None  # nothing made up for a model the platform does not know
    assert smollm2.model_card is not None and smollm2.model_card.license == "Apache-2.0"
    assert "HuggingFaceTB" in smollm2.model_card.provider and smollm2.model_card.languages == ["en"]
    assert e5.model_card is not None and e5.model_card.license == "MIT" and "intfloat" in e5.model_card.provider
    with pytest.raises(ConfigError) as error:
        load_catalogue(_write(tmp_path, "models:\n  - {id: m, type: chat, backends: [{type: e5}], "
                                        "card: {provider: X, license: MIT}}"))
    assert "models[0].card.intended_use" in str(error.value)
