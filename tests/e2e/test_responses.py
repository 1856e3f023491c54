"""The Responses API (``/v1/responses``) through the official openai SDK and the openai-agents SDK, against a
running server: the mock backend peer (text, tool calls, streamed tool calls) and the embedded SmolLM2."""
from __future__ import annotations

import io
import json
import secrets
import time
import zipfile
from pathlib import Path

import httpx
import openai
import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

from tests.support.documents import MARKDOWN, upload, wait_ingested
from tests.support.mock_backend import CHUNKS
from tests.support.servers import Server

ANSWER = "Bonjour, ceci est une réponse simulée."
TOOL = {"type": "function", "name": "horaires_mairie", "description": "Les horaires d'ouverture d'une mairie",
        "parameters": {"type": "object", "properties": {"ville": {"type": "string"}}, "required": ["ville"]}}
CHAT_FIELDS = {"model", "messages", "stream", "stream_options", "temperature", "top_p", "max_tokens", "tools",
               "tool_choice", "parallel_tool_calls", "response_format", "user"}


def _new_user(server: Server) -> tuple[int, str]:
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=30) as admin:
        user = admin.post("/users", json={"email": f"reponses-{secrets.token_hex(4)}@culture.gouv.fr"}).json()
        return user["id"], admin.post("/keys", json={"user_id": user["id"]}).json()["key"]


def _sdk(server: Server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0, timeout=120)


def test_a_response_is_created_retrieved_listed_and_deleted(any_server: Server) -> None:
    client = _sdk(any_server, any_server.admin_key)
    response = client.responses.create(model="remote-chat", input="Bonjour", instructions="Réponds poliment.",
                                       metadata={"dossier": "42"}, temperature=0.2)
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == ANSWER and response.model == "remote-chat"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (11, 7, 18)
    assert response.metadata == {"dossier": "42"} and response.temperature == 0.2
    again = client.responses.retrieve(response.id)
    assert again.output_text == ANSWER and again.instructions == "Réponds poliment."
    items = client.responses.input_items.list(response.id)
    assert [(item.role, item.content[0].text) for item in items.data] == [("user", "Bonjour")]
    client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


def test_function_tools_reach_the_backend_as_chat_tools_and_come_back_as_function_calls(
        client: openai.OpenAI) -> None:
    response = client.responses.create(model="remote-chat", input="Quand ouvre la mairie de Lyon ?", tools=[TOOL],
                                       tool_choice="auto", max_output_tokens=100, top_p=0.9)
    [call] = response.output
    assert call.type == "function_call" and call.name == "horaires_mairie" and call.call_id == "call_1"
    seen = set(json.loads(call.arguments)["seen"])
    assert {"tools", "tool_choice", "max_tokens", "top_p", "messages", "model"} <= seen <= CHAT_FIELDS


def test_a_short_agent_loop_with_function_call_output_and_previous_response_id(client: openai.OpenAI) -> None:
    first = client.responses.create(model="remote-chat", input="Quand ouvre la mairie de Lyon ?", tools=[TOOL])
    call = first.output[0]
    second = client.responses.create(
        model="remote-chat", previous_response_id=first.id, tools=[TOOL],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "de 8 h 30 à 17 h"}])
    assert second.output_text == "L'outil a répondu : de 8 h 30 à 17 h"
    assert second.previous_response_id == first.id
    kinds = [item.type for item in client.responses.input_items.list(second.id, order="asc").data]
    assert kinds == ["message", "function_call", "function_call_output"]


def test_a_streamed_response_sends_the_responses_events(client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="remote-chat", input="Bonjour", stream=True))
    kinds = [event.type for event in events]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * CHUNKS,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(f"tok{i} " for i in range(CHUNKS))
    assert "".join(event.delta for event in events if event.type == "response.output_text.delta") == text
    done = events[-1].response
    assert done.output_text == text and done.usage.output_tokens == CHUNKS
    assert client.responses.retrieve(done.id).output_text == text  # stored before the last event


def test_a_streamed_function_call_sends_its_arguments_in_pieces(client: openai.OpenAI) -> None:
    with client.responses.stream(model="remote-chat", input="Horaires ?", tools=[TOOL]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    pieces = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    assert len(pieces) == 3
    [done] = [event for event in events if event.type == "response.function_call_arguments.done"]
    assert done.arguments == "".join(pieces) and "tools" in json.loads(done.arguments)["seen"]
    [call] = final.output
    assert call.type == "function_call" and call.name == "horaires_mairie" and call.arguments == done.arguments


def test_json_schema_text_format_becomes_the_response_format(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"ville": {"type": "string"}, "ouvert": {"type": "boolean"}},
              "required": ["ville", "ouvert"]}
    response = client.responses.create(model="remote-chat", input="Lyon ?", text={"format": {
        "type": "json_schema", "name": "mairie", "schema": schema, "strict": True}})
    assert json.loads(response.output_text) == {"ville": "exemple", "ouvert": False}


def test_others_responses_are_not_found(server: Server, client: openai.OpenAI) -> None:
    mine = client.responses.create(model="remote-chat", input="Bonjour")
    _, key = _new_user(server)
    other = _sdk(server, key)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.NotFoundError) as error:
        other.responses.create(model="remote-chat", input="Et ensuite ?", previous_response_id=mine.id)
    assert error.value.body["param"] == "previous_response_id"
    assert client.responses.retrieve(mine.id).output_text == ANSWER


def test_a_response_not_stored_cannot_be_retrieved(client: openai.OpenAI) -> None:
    response = client.responses.create(model="remote-chat", input="Bonjour", store=False)
    assert response.output_text == ANSWER
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


@pytest.mark.parametrize(("fields", "param"), [
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [TOOL, {"type": "file_search"}]}, "tools[1].vector_store_ids"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["1"], "filters": {"type": "eq"}}]}, "tools[0].filters"),
    ({"max_output_tokens": 5000}, "max_output_tokens"),
    ({"extra_body": {"background": True}}, "background"),
    ({"include": ["message.output_text.logprobs"]}, "include"),
    ({"input": [{"type": "computer_call_output", "call_id": "x"}]}, "input[0].type"),
])
def test_what_is_not_supported_is_refused_by_name(client: openai.OpenAI, fields: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.responses.create(**{"model": "remote-chat", "input": "Bonjour", **fields})
    assert error.value.body["param"] == param


def test_quotas_refuse_with_the_envelope_and_consume_nothing(server: Server) -> None:
    user_id, key = _new_user(server)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=30) as admin:
        for rule in ({"requests_per_minute": 5}, {"model": "remote-chat", "requests_per_minute": 2}):
            assert admin.post("/quotas", json={"scope": "user", "subject": str(user_id), **rule}).status_code == 201
    client = _sdk(server, key)
    for _ in range(2):
        client.responses.create(model="remote-chat", input="Bonjour")
    for stream in (False, True, False):  # refused by the remote-chat rule: the all-models rule must not count them
        with pytest.raises(openai.RateLimitError) as error:
            client.responses.create(model="remote-chat", input="Bonjour", stream=stream)
        assert error.value.body["code"] == "rate_limit_exceeded" and error.value.body["type"] == "requests"
    for _ in range(3):
        client.embeddings.create(model="remote-embed", input="x")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="remote-embed", input="x")


def test_responses_calls_are_recorded_as_responses_in_usage(any_server: Server) -> None:
    """A ``/v1/responses`` call (whole or streamed) is answered by a chat model, but its usage row names the API the
    caller called: the summary per endpoint tells them apart from chat completions."""
    _, key = _new_user(any_server)
    client = _sdk(any_server, key)
    client.responses.create(model="remote-chat", input="Bonjour")
    assert list(client.responses.create(model="remote-chat", input="Bonjour", stream=True))[-1].type == \
        "response.completed"
    client.chat.completions.create(model="remote-chat", messages=[{"role": "user", "content": "Bonjour"}])
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=any_server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as me:
        while True:  # usage rows are written in batches
            summary = me.get("/usage/summary", params={"group_by": "endpoint"})
            assert summary.status_code == 200, summary.text
            by_endpoint = {row["endpoint"]: row for row in summary.json()["data"]}
            if sum(row["requests"] for row in by_endpoint.values()) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        rows = me.get("/usage", params={"limit": 10}).json()["data"]
    assert {name: row["requests"] for name, row in by_endpoint.items()} == {"responses": 2, "chat/completions": 1}
    assert by_endpoint["responses"]["total_tokens"] > 0
    assert sorted(row["endpoint"] for row in rows) == ["chat/completions", "responses", "responses"]


def test_a_persons_responses_are_exported_and_erased_with_them(server: Server) -> None:
    user_id, key = _new_user(server)
    response = _sdk(server, key).responses.create(model="remote-chat", input="Mon numéro de dossier est 1234")
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"},
                      timeout=60) as admin:
        archive = admin.get(f"/users/{user_id}/export")
        assert archive.status_code == 200
        with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
            data = json.loads(opened.read("donnees.json"))
        [kept] = data["responses"]
        assert kept["id"] == response.id and "1234" in json.dumps(kept["input_items"])
        assert admin.delete(f"/users/{user_id}").status_code == 204
    admin_sdk = _sdk(server, server.admin_key)
    with pytest.raises(openai.NotFoundError):
        admin_sdk.responses.retrieve(response.id)  # gone; an admin could not read it anyway


def test_the_embedded_model_answers_in_text(client: openai.OpenAI) -> None:
    response = client.responses.create(model="smollm2-135m", input="Say hello.", max_output_tokens=16)
    assert response.status in ("completed", "incomplete") and response.output_text.strip()
    assert response.usage.output_tokens > 0 and response.usage.input_tokens > 0
    if response.status == "incomplete":
        assert response.incomplete_details.reason == "max_output_tokens"


async def test_an_openai_agents_agent_calls_its_tool_and_answers(server: Server) -> None:
    set_tracing_disabled(True)  # the SDK would send its traces to OpenAI
    asked: list[str] = []

    @function_tool
    def horaires_mairie(seen: list[str]) -> str:
        """Les horaires d'ouverture de la mairie (the mock model calls it with the fields of its request)."""
        asked.append(",".join(seen))
        return "de 8 h 30 à 17 h"

    client = openai.AsyncOpenAI(base_url=server.base_url, api_key=server.admin_key, max_retries=0)
    agent = Agent(name="Accueil", instructions="Réponds aux questions sur les mairies.", tools=[horaires_mairie],
                  model=OpenAIResponsesModel(model="remote-chat", openai_client=client),
                  model_settings=ModelSettings(temperature=0.1))
    result = await Runner.run(agent, "Quand ouvre la mairie ?")
    assert result.final_output == "L'outil a répondu : de 8 h 30 à 17 h"
    streamed = Runner.run_streamed(agent, "Et le samedi ?")
    async for _ in streamed.stream_events():
        pass
    assert streamed.final_output == "L'outil a répondu : de 8 h 30 à 17 h"
    assert len(asked) == 2 and all("tools" in fields for fields in asked)
    await client.close()


@pytest.mark.parametrize("body", [
    {"input": [{"role": ["user"], "content": "x"}]},
    {"input": [{"type": ["message"], "role": "user", "content": "x"}]},
    {"input": [{"role": "user", "content": [{"type": ["input_text"], "text": "x"}]}]},
    {"input": [{"role": "user", "content": [3]}]},
    {"input": [{"type": "function_call", "call_id": 1, "name": "f", "arguments": "{}"}]},
    {"input": [{"type": "function_call_output", "call_id": "c", "output": {"a": 1}}]},
    {"input": "x", "tools": [{"type": "function"}]},
    {"input": "x", "tool_choice": {"type": "mcp"}},
    {"input": "x", "text": {"format": {"type": "json_schema", "schema": "non"}}},
    {"input": "x", "reasoning": {"effort": "high", "summary": "auto"}},
    {"input": "x", "previous_response_id": "resp_99999999999999999999"},
])
def test_malformed_requests_are_refused_with_the_envelope(server: Server, body: dict) -> None:
    answer = httpx.post(f"{server.base_url}/responses", json={"model": "remote-chat", **body},
                        headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30)
    assert answer.status_code in (400, 404, 422), answer.text
    assert answer.json()["error"]["message"]


def test_file_search_searches_the_callers_collections(server: Server, tmp_path: Path) -> None:
    _, key = _new_user(server)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        collection = http.post("/collections", json={"name": "Congés"}).json()["id"]
        (tmp_path / "conges.md").write_text(MARKDOWN)
        document = upload(http, collection, tmp_path / "conges.md").json()["id"]
        wait_ingested(http, [document], embedded=False)
    search = {"type": "file_search", "vector_store_ids": [str(collection)], "max_num_results": 2}
    client = _sdk(server, key)
    response = client.responses.create(model="remote-chat", input="Les congés non pris peuvent-ils être reportés ?",
                                       tools=[search])
    found, answer = response.output
    assert found.type == "file_search_call" and found.queries == ["Les congés non pris peuvent-ils être reportés ?"]
    assert found.results and any("reportés" in result.text for result in found.results)
    assert answer.type == "message" and response.output_text == ANSWER
    kinds = [event.type for event in client.responses.create(model="remote-chat", input="Report des congés ?",
                                                             tools=[search], stream=True)]
    assert kinds[2:5] == ["response.output_item.added", "response.file_search_call.completed",
                          "response.output_item.done"]
    follow = client.responses.create(model="remote-chat", previous_response_id=response.id, input=[
        *[item.model_dump(exclude_none=True) for item in response.output], {"role": "user", "content": "Merci"}])
    assert follow.output_text == ANSWER  # the file search given back, and the one stored, are not a chat message
    with pytest.raises(openai.NotFoundError):  # another user's collection is not found
        _sdk(server, server.admin_key).responses.create(model="remote-chat", input="Report ?", tools=[search])


def test_a_backend_failing_mid_stream_ends_with_response_failed_and_keeps_what_was_written(
        client: openai.OpenAI) -> None:
    events = list(client.responses.create(model="remote-midfail", input="Bonjour", stream=True))
    assert events[-1].type == "response.failed"
    failed = events[-1].response
    assert failed.status == "failed" and failed.error.code == "backend_error"
    stored = client.responses.retrieve(failed.id)
    written = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert written.startswith("tok0 ") and stored.status == "failed" and stored.output[0].content[0].text == written
