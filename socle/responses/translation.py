"""The Responses API in the words of chat completions, both ways: a ``/v1/responses`` request becomes one chat
call (so that admission, quotas, routing, usage, cost and carbon are those of chat, decided in one place), and
the chat answer becomes the response's output items.

Nothing of the client's request reaches the backend unless named here: every field is either translated, or
refused with a 400 that names it (an OpenAI feature this platform does not offer is never silently ignored).
"""
from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from socle.endpoints import Json
from socle.errors import InvalidRequest

# The request's fields this translation reads; any other field with a value is refused by name.
FIELDS = frozenset({
    "model", "input", "instructions", "previous_response_id", "store", "tools", "tool_choice", "parallel_tool_calls",
    "temperature", "top_p", "max_output_tokens", "text", "metadata", "stream", "stream_options", "user",
    "safety_identifier", "prompt_cache_key", "include", "truncation", "reasoning"})
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_TEXT_PARTS = frozenset({"input_text", "output_text"})
_NO_TOOL = {
    "web_search": "this platform has no access to the web, by design",
    "web_search_preview": "this platform has no access to the web, by design",
    "computer_use_preview": "no model here drives a computer",
    "code_interpreter": "this platform runs no code for a model",
    "image_generation": "no model here generates images",
}
_LEFT_OUT = frozenset({"reasoning", "file_search_call"})  # items given back that the chat model has no words for
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_item_id(prefix: str) -> str:
    """An output item's id (``msg_…``, ``fc_…``): random, since items travel back in later requests."""
    return f"{prefix}_{secrets.token_hex(12)}"


def refuse_unknown(body: Json) -> None:
    """Refuse the first field this platform does not offer (a null or false one asks for nothing)."""
    for name, value in body.items():
        if name not in FIELDS and value not in (None, False):
            raise InvalidRequest(f"'{name}' is not supported by this platform's Responses API.", param=name,
                                 code="unsupported_parameter")
    if body.get("include"):
        raise InvalidRequest("'include' is not supported: responses carry no extra data to include.", param="include",
                             code="unsupported_parameter")
    if body.get("truncation") not in (None, "disabled"):
        raise InvalidRequest("Only truncation 'disabled' is supported: a context too long is refused, not cut.",
                             param="truncation", code="unsupported_parameter")
    reasoning = body.get("reasoning") or {}
    for name in ("summary", "generate_summary"):
        if reasoning.get(name) is not None:
            raise InvalidRequest("Reasoning summaries are not supported.", param=f"reasoning.{name}",
                                 code="unsupported_parameter")
    if (body.get("text") or {}).get("verbosity") is not None:
        raise InvalidRequest("'text.verbosity' is not supported.", param="text.verbosity",
                             code="unsupported_parameter")


# ---- input items --------------------------------------------------------------------------------------

def input_items(given: str | Sequence[Json]) -> list[Json]:
    """The request's input as items of one canonical shape (what is stored, listed and given back): a text is a
    user message; a message's text content becomes parts; reasoning items, which a chat model neither reads nor
    writes, and file searches given back (done already) are left out."""
    if isinstance(given, str):
        return [_message("user", [{"type": "input_text", "text": given}])]
    items: list[Json] = []
    for index, item in enumerate(given):
        where = f"input[{index}]"
        kind = item.get("type", "message")
        if not isinstance(kind, str):
            raise InvalidRequest("An item's type is a string.", param=f"{where}.type")
        if kind == "message":
            items.append(_input_message(item, where))
        elif kind == "function_call":
            items.append({"type": "function_call", "id": _item_id(item, "fc"),
                          "call_id": _text_field(item, "call_id", where), "name": _text_field(item, "name", where),
                          "arguments": _text_field(item, "arguments", where), "status": "completed"})
        elif kind == "function_call_output":
            items.append({"type": "function_call_output", "id": _item_id(item, "fco"),
                          "call_id": _text_field(item, "call_id", where),
                          "output": _output_text(item.get("output"), f"{where}.output"), "status": "completed"})
        elif kind not in _LEFT_OUT:
            raise InvalidRequest(f"Input items of type '{kind}' are not supported: send messages, function_call "
                                 "and function_call_output items.", param=f"{where}.type", code="unsupported_item")
    return items


def _item_id(item: Json, prefix: str) -> str:
    """The id the client gave an item (items travel back and forth), or a new one."""
    given = item.get("id")
    return given if isinstance(given, str) and given else new_item_id(prefix)


def _message(role: str, content: list[Json], item_id: str | None = None) -> Json:
    return {"type": "message", "id": item_id or new_item_id("msg"), "role": role, "content": content,
            "status": "completed"}


def _input_message(item: Json, where: str) -> Json:
    role = item.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidRequest("A message's role is user, assistant, system or developer.", param=f"{where}.role")
    content = item.get("content")
    if isinstance(content, str):
        kind = "output_text" if role == "assistant" else "input_text"
        return _message(role, [_text_part(kind, content)], _item_id(item, "msg"))
    if not isinstance(content, list):
        raise InvalidRequest("A message's content is a text or a list of parts.", param=f"{where}.content")
    return _message(role, [_part(part, f"{where}.content[{number}]") for number, part in enumerate(content)],
                    _item_id(item, "msg"))


def _text_part(kind: str, text: str) -> Json:
    return {"type": kind, "text": text, "annotations": []} if kind == "output_text" else {"type": kind, "text": text}


def _part(part: Any, where: str) -> Json:
    kind = part.get("type") if isinstance(part, dict) else None
    kind = kind if isinstance(kind, str) else None
    if kind in _TEXT_PARTS and isinstance(part.get("text"), str):
        return _text_part(kind, part["text"])
    if kind == "refusal" and isinstance(part.get("refusal"), str):
        return _text_part("output_text", part["refusal"])
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return {"type": "input_image", "image_url": part["image_url"], "detail": part.get("detail") or "auto"}
    if kind == "input_image":
        raise InvalidRequest("An image is given by its 'image_url' (a URL or a data: URL); files are not supported.",
                             param=f"{where}.image_url", code="unsupported_parameter")
    raise InvalidRequest(f"Content parts of type '{kind}' are not supported: send input_text, output_text or "
                         "input_image parts.", param=f"{where}.type", code="unsupported_item")


def _text_field(item: Json, name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string.", param=f"{where}.{name}")
    return value


def _output_text(output: Any, where: str) -> str:
    """A tool's output as the chat's tool message holds it: a text (text parts are joined)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(part, dict) and part.get("type") in _TEXT_PARTS
                                        for part in output):
        return "".join(str(part.get("text", "")) for part in output)
    raise InvalidRequest("A function call's output is a text or a list of text parts.", param=where)


# ---- to a chat call -----------------------------------------------------------------------------------

def chat_messages(instructions: str | None, items: Sequence[Json]) -> list[Json]:
    """The chat messages of a context: the instructions first, as a system message; the function calls of one
    turn in one assistant message; each function's output as a tool message."""
    messages: list[Json] = [{"role": "system", "content": instructions}] if instructions else []
    for item in items:
        if item["type"] == "message":
            messages.append({"role": _ROLES[item["role"]], "content": _chat_content(item["content"])})
        elif item["type"] == "function_call":
            call = {"id": item["call_id"], "type": "function",
                    "function": {"name": item["name"], "arguments": item["arguments"]}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif item["type"] == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]})
    return messages


def _chat_content(parts: Sequence[Json]) -> str | list[Json]:
    """A text when the parts are all text (what every chat template reads), else chat parts with images."""
    if all(part["type"] in _TEXT_PARTS for part in parts):
        return "".join(part["text"] for part in parts)
    return [{"type": "text", "text": part["text"]} if part["type"] in _TEXT_PARTS
            else {"type": "image_url", "image_url": {"url": part["image_url"], "detail": part["detail"]}}
            for part in parts]


def file_search(tools: Sequence[Json]) -> tuple[list[int], int] | None:
    """The collections a ``file_search`` tool searches (its ``vector_store_ids``: ids of the caller's collections)
    and how many excerpts it gives the model; None without that tool. The search is the platform's, done before
    the call (the model is given the excerpts), not a tool the model calls."""
    found = [(index, tool) for index, tool in enumerate(tools) if tool.get("type") == "file_search"]
    if not found:
        return None
    if len(found) > 1:
        raise InvalidRequest("Give one file_search tool, with every collection in its vector_store_ids.",
                             param=f"tools[{found[1][0]}]", code="unsupported_tool")
    index, tool = found[0]
    ids = tool.get("vector_store_ids")
    if not isinstance(ids, list) or not ids or len(ids) > 100:
        raise InvalidRequest("file_search searches your collections: give their ids (1 to 100) in vector_store_ids.",
                             param=f"tools[{index}].vector_store_ids", code="unsupported_tool")
    collections = []
    for given in ids:
        text = str(given).removeprefix("vs_")
        if not text.isdigit() or not 0 < int(text) < 2**63:
            raise InvalidRequest(f"'{given}' is not the id of a collection.", param=f"tools[{index}].vector_store_ids")
        collections.append(int(text))
    k = tool.get("max_num_results", 5)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 50:
        raise InvalidRequest("max_num_results is between 1 and 50.", param=f"tools[{index}].max_num_results")
    for name, value in tool.items():
        if name not in ("type", "vector_store_ids", "max_num_results") and value is not None:
            raise InvalidRequest(f"file_search's '{name}' is not supported.", param=f"tools[{index}].{name}",
                                 code="unsupported_parameter")
    return collections, k


def file_search_call(question: str, results: Sequence[Any]) -> Json:
    """The output item that says what was searched and found (``results``: :class:`~socle.rag.search.Result`)."""
    return {"type": "file_search_call", "id": new_item_id("fs"), "status": "completed", "queries": [question],
            "results": [{"file_id": str(result.chunk.document_id), "filename": result.document_name,
                         "score": result.score, "text": result.chunk.text,
                         "attributes": {"collection_id": result.chunk.collection_id, "page": result.chunk.page}}
                        for result in results]}


def chat_tools(tools: Sequence[Json]) -> list[Json]:
    """Function tools as chat tools (a file_search tool is the platform's own search: see :func:`file_search`);
    any other kind is refused, naming it and why."""
    converted = []
    for index, tool in enumerate(tools):
        kind = tool.get("type")
        if kind == "file_search":
            continue
        if kind != "function":
            reason = _NO_TOOL.get(str(kind), "only function tools are supported")
            raise InvalidRequest(f"Tools of type '{kind}' are not supported: {reason}.", param=f"tools[{index}].type",
                                 code="unsupported_tool")
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequest("A function tool needs a 'name'.", param=f"tools[{index}].name")
        function = {"name": tool["name"], "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
        for name in ("description", "strict"):
            if tool.get(name) is not None:
                function[name] = tool[name]
        converted.append({"type": "function", "function": function})
    return converted


def chat_tool_choice(choice: str | Json) -> str | Json:
    if isinstance(choice, str):
        if choice in ("auto", "none", "required"):
            return choice
    elif choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("tool_choice is 'auto', 'none', 'required' or a function ({\"type\": \"function\", "
                         "\"name\": ...}).", param="tool_choice", code="unsupported_parameter")


def response_format(text: Json | None) -> Json | None:
    """``text.format`` as the chat's ``response_format``."""
    given = (text or {}).get("format") or {"type": "text"}
    kind = given.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        if not isinstance(given.get("schema"), dict) or not isinstance(given.get("name"), str):
            raise InvalidRequest("A json_schema format needs a 'name' and a 'schema'.", param="text.format")
        schema = {name: given[name] for name in ("name", "schema", "description", "strict")
                  if given.get(name) is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest("text.format is 'text', 'json_object' or 'json_schema'.", param="text.format.type")


def chat_body(body: Json, messages: list[Json]) -> Json:
    """The chat call of a Responses request, whose context is ``messages``."""
    chat: Json = {"model": body["model"], "messages": messages}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("max_output_tokens", "max_tokens"),
                         ("parallel_tool_calls", "parallel_tool_calls")):
        if body.get(ours) is not None:
            chat[theirs] = body[ours]
    user = body.get("safety_identifier") or body.get("user")
    if user:
        chat["user"] = user
    tools = chat_tools(body.get("tools") or [])
    if tools:
        chat["tools"] = tools
    if body.get("tool_choice") is not None:
        choice = chat_tool_choice(body["tool_choice"])
        if tools:  # a choice among no tools (a file_search alone) asks nothing of the model
            chat["tool_choice"] = choice
    form = response_format(body.get("text"))
    if form is not None:
        chat["response_format"] = form
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    if body.get("stream"):
        chat.update(stream=True, stream_options={"include_usage": True})  # a streamed response ends with its usage
    return chat


# ---- from the chat answer ------------------------------------------------------------------------------

def output_items(message: Json) -> list[Json]:
    """A chat answer's message as output items: its text as a message, then each tool call as a function call."""
    items: list[Json] = []
    if message.get("content") or not message.get("tool_calls"):
        items.append(_message("assistant", [_text_part("output_text", message.get("content") or "")]))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        items.append({"type": "function_call", "id": new_item_id("fc"),
                      "call_id": call.get("id") or new_item_id("call"), "name": function.get("name", ""),
                      "arguments": function.get("arguments") or "{}", "status": "completed"})
    return items


def usage(chat_usage: Json | None) -> Json | None:
    if not chat_usage:
        return None
    prompt, completion = int(chat_usage.get("prompt_tokens") or 0), int(chat_usage.get("completion_tokens") or 0)
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}


def incomplete_reason(finish_reason: str | None) -> str | None:
    """Why an answer stopped short (``max_output_tokens``, ``content_filter``), or None when it is whole."""
    return _INCOMPLETE.get(finish_reason or "")


def parameters(body: Json) -> Json:
    """What the response object repeats of its request, with the Responses API's defaults."""
    return {"tools": list(body.get("tools") or []), "tool_choice": body.get("tool_choice") or "auto",
            "parallel_tool_calls": body.get("parallel_tool_calls", True) is not False,
            "temperature": body.get("temperature"), "top_p": body.get("top_p"),
            "max_output_tokens": body.get("max_output_tokens"),
            "text": {"format": (body.get("text") or {}).get("format") or {"type": "text"}},
            "metadata": dict(body.get("metadata") or {}), "user": body.get("user"),
            "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
            "store": body.get("store", True) is not False}


def response_object(*, response_id: str, created_at: int, model: str, status: str, output: list[Json],
                    usage: Json | None, error: Json | None, instructions: str | None, parameters: Json,
                    previous_response_id: str | None) -> Json:
    """The response object, as the openai SDK reads it. ``error`` holds why a response failed, or why one is
    incomplete (``{"reason": ...}``)."""
    return {"id": response_id, "object": "response", "created_at": created_at, "status": status,
            "error": error if status == "failed" else None,
            "incomplete_details": error if status == "incomplete" else None,
            "instructions": instructions, "model": model, "output": output,
            "previous_response_id": previous_response_id, "truncation": "disabled", "usage": usage,
            "background": False, "service_tier": "default", **parameters}
