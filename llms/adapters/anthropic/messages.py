"""OpenAI chat `messages` -> Anthropic top-level `system` plus user/assistant `messages`.

https://docs.anthropic.com/en/api/messages (request shape) and
https://platform.openai.com/docs/api-reference/chat/create (the client's shape).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from llms.adapters.anthropic.tables import IMAGE_MEDIA_TYPES, image_media_type, parse_data_url
from mcpd import wirejson
from mcpd.errors import InvalidRequest

Block = dict[str, Any]
Message = dict[str, Any]


def map_messages(messages: list[dict[str, Any]]) -> tuple[list[Block], list[Message]]:
    """The Anthropic (system blocks, messages) for a client's OpenAI `messages`."""
    system: list[Block] = []
    turns: list[Message] = []
    call_ids: set[str] = set()  # tool calls of the latest assistant turn, answered by `tool` messages
    for i, message in enumerate(messages):
        role = message["role"]
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            # Anthropic has no system role inside `messages`: https://docs.anthropic.com/en/api/messages#body-system
            system.extend(system_blocks(message.get("content"), where))
        elif role == "user":
            _append(turns, "user", user_blocks(message.get("content"), where))
        elif role == "assistant":
            blocks = assistant_blocks(message, where)
            call_ids = {block["id"] for block in blocks if block["type"] == "tool_use"}
            _append(turns, "assistant", blocks)
        elif role == "tool":
            _append(turns, "user", [tool_result_block(message, where, call_ids)])
        else:  # "function": the legacy API, whose messages carry no call id to answer
            raise InvalidRequest(f"{where}.role: 'function' messages are not supported; use tools.")
    if not turns:
        raise InvalidRequest("messages: at least one user or assistant message with content is required.")
    return system, turns


def _append(turns: list[Message], role: str, blocks: list[Block]) -> None:
    """Add blocks as a turn, merging into the previous turn of the same role (as Anthropic would)."""
    if not blocks:  # an all-empty message is omitted: Anthropic refuses empty content
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def text_block(text: str) -> list[Block]:
    """One text block, or none for empty or whitespace-only text (Anthropic rejects those)."""
    # https://docs.anthropic.com/en/api/messages: "text content blocks must be non-empty"
    return [{"type": "text", "text": text}] if text.strip() else []


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content as a list of OpenAI parts (a string is one text part; None is none)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        return content
    raise InvalidRequest(f"{where}.content must be a string or a list of content parts.")


def _text_of(part: dict[str, Any], where: str) -> str:
    """The text of a text part, checked."""
    text = part.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text must be a string.")
    return text


def system_blocks(content: Any, where: str) -> list[Block]:
    """Text blocks for a system or developer message (text parts only)."""
    blocks: list[Block] = []
    for j, part in enumerate(_parts(content, where)):
        if part.get("type") != "text":
            raise InvalidRequest(
                f"{where}.content[{j}].type: only text parts are allowed in system messages."
            )
        blocks.extend(text_block(_text_of(part, f"{where}.content[{j}]")))
    return blocks


def user_blocks(content: Any, where: str) -> list[Block]:
    """Text and image blocks for a user message."""
    blocks: list[Block] = []
    for j, part in enumerate(_parts(content, where)):
        part_where = f"{where}.content[{j}]"
        kind = part.get("type")
        if kind == "text":
            blocks.extend(text_block(_text_of(part, part_where)))
        elif kind == "image_url":
            blocks.append(image_block(part.get("image_url"), f"{part_where}.image_url"))
        else:  # input_audio, file, ...: nothing Anthropic's Messages API takes from an OpenAI part
            raise InvalidRequest(f"{part_where}.type: {kind!r} content parts are not supported by anthropic.")
    return blocks


def image_block(image_url: Any, where: str) -> Block:
    """An image block for an OpenAI image_url part: data: URL -> base64 source, http(s) -> url source."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise InvalidRequest(f"{where}.url must be a string.")
    if url.startswith("data:"):
        return {"type": "image", "source": base64_source(url, f"{where}.url")}
    if url.startswith(("https://", "http://")):
        # `detail` has no Anthropic equivalent and only tunes OpenAI's tiling: dropped.
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest(f"{where}.url must be an http(s) URL or a data: URL.")


def base64_source(url: str, where: str) -> dict[str, str]:
    """The base64 image source for a data: URL, refusing media types Anthropic does not accept."""
    parsed = parse_data_url(url)
    if parsed is None:
        raise InvalidRequest(f"{where}: only base64 data: URLs are supported.")
    written, data = parsed
    media = image_media_type(written)
    if media is None:
        accepted = ", ".join(IMAGE_MEDIA_TYPES)
        raise InvalidRequest(
            f"{where}: image media type {written!r} is not supported by anthropic ({accepted})."
        )
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}: the data: URL is not valid base64.") from None
    return {"type": "base64", "media_type": media, "data": data}


def assistant_blocks(message: dict[str, Any], where: str) -> list[Block]:
    """Text blocks, then tool_use blocks, for an assistant message (no empty text block)."""
    if message.get("function_call") is not None:
        raise InvalidRequest(f"{where}.function_call is not supported; use tool_calls.")
    blocks: list[Block] = []
    for j, part in enumerate(_parts(message.get("content"), where)):
        kind = part.get("type")
        if kind == "text":
            blocks.extend(text_block(_text_of(part, f"{where}.content[{j}]")))
        elif kind == "refusal":  # a refusal the model gave earlier is still what it said
            blocks.extend(text_block(str(part.get("refusal") or "")))
        else:
            raise InvalidRequest(f"{where}.content[{j}].type: {kind!r} is not allowed in assistant messages.")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls must be a list.")
    blocks.extend(tool_use_block(call, f"{where}.tool_calls[{k}]") for k, call in enumerate(calls))
    return blocks


def tool_use_block(call: Any, where: str) -> Block:
    """A tool_use block for one OpenAI tool call; its arguments must be a JSON object."""
    if not isinstance(call, dict) or call.get("type", "function") != "function":
        raise InvalidRequest(f"{where}: only function tool calls are supported.")
    function = call.get("function")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.id must be a non-empty string.")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"{where}.function.name must be a string.")
    return {
        "type": "tool_use",
        "id": call_id,
        "name": function["name"],
        "input": tool_input(function.get("arguments"), f"{where} ({call_id})"),
    }


def tool_input(arguments: Any, where: str) -> dict[str, Any]:
    """A tool call's `arguments` JSON string as the object Anthropic wants as `input`."""
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}  # some clients send "" for a call without arguments
    if not isinstance(arguments, str):
        raise InvalidRequest(f"{where}.function.arguments must be a JSON string.")
    try:
        value = wirejson.loads(arguments)
    except ValueError:
        raise InvalidRequest(f"{where}.function.arguments is not valid JSON.") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}.function.arguments must be a JSON object.")
    return value


def tool_result_block(message: dict[str, Any], where: str, call_ids: set[str]) -> Block:
    """A tool_result block for a `tool` message, answering a call of the latest assistant turn."""
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.tool_call_id must be a non-empty string.")
    # https://docs.anthropic.com/en/docs/build-with-claude/tool-use: a tool_result must answer a
    # tool_use of the previous assistant message.
    if call_id not in call_ids:
        raise InvalidRequest(
            f"{where}.tool_call_id {call_id!r} answers no tool call of the preceding assistant message."
        )
    block: Block = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    texts: list[str] = []
    for j, part in enumerate(_parts(content, where)):
        if part.get("type") != "text":
            raise InvalidRequest(f"{where}.content[{j}].type: only text parts are allowed in tool messages.")
        texts.extend(piece["text"] for piece in text_block(_text_of(part, f"{where}.content[{j}]")))
    if isinstance(content, str) and texts:
        block["content"] = content
    elif texts:
        block["content"] = [{"type": "text", "text": text} for text in texts]
    return block  # an empty result carries no content at all rather than an empty text block
