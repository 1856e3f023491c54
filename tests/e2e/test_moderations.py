"""``/v1/moderations`` through the official openai SDK: routed to a moderation model where the catalogue has one
(the mock backend's route, a peer), a clear 404 where it has none; the catalogue's connection test of a moderation
and of a speech-to-text model."""
from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.support.mock_audio import TEXT
from tests.support.servers import stop
from tests.support.speech import start_speech_server


@pytest.fixture(scope="module")
def moderated(tmp_path_factory: pytest.TempPathFactory, mock_backend: str) -> Iterator[openai.OpenAI]:
    server = start_speech_server(tmp_path_factory.mktemp("moderation"), mock_backend)
    yield openai.OpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0, timeout=60)
    stop(server.process)


def test_texts_are_classified_by_the_configured_model(moderated: openai.OpenAI) -> None:
    answer = moderated.moderations.create(input=["Bonjour madame", "Ceci est une menace"])
    assert answer.model == "remote-moderation"  # the catalogue's first moderation model, when none is named
    assert [result.flagged for result in answer.results] == [False, True]
    named = moderated.moderations.create(model="remote-moderation", input="Une menace")
    assert named.results[0].categories.violence is True


def test_a_model_of_another_type_is_refused(moderated: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        moderated.moderations.create(model="remote-chat", input="Bonjour")
    assert refused.value.code == "model_not_supported"


def test_without_a_moderation_model_every_call_is_a_404_that_says_so(client: openai.OpenAI) -> None:
    for model in (None, "omni-moderation-latest", "remote-chat"):
        with pytest.raises(openai.NotFoundError) as missing:
            client.moderations.create(input="Bonjour", **({"model": model} if model else {}))
        assert missing.value.code == "model_not_found" and missing.value.body["param"] == "model"
        assert missing.value.body["message"] == "No moderation model is configured on this platform."


def test_the_connection_test_of_the_catalogue_probes_both_types(moderated: openai.OpenAI) -> None:
    entries = {entry["model"]: entry["id"] for entry in moderated.get("/catalogue/models", cast_to=dict)["data"]}
    whisper = moderated.post(f"/catalogue/models/{entries['remote-whisper']}/test", cast_to=list)
    assert [(probe["backend"], probe["ok"]) for probe in whisper] == [("whisper-down", False), ("whisper-up", True)]
    assert whisper[1]["answer"] == f"transcription d'une seconde de silence : « {TEXT} »"
    [moderation] = moderated.post(f"/catalogue/models/{entries['remote-moderation']}/test", cast_to=list)
    assert (moderation["ok"], moderation["answer"]) == (True, "texte non signalé")
