"""An Anthropic Messages `system` and `messages` -> chat.completions `messages`, one function per block kind.

Anthropic request: https://docs.anthropic.com/en/api/messages
Chat request:      https://platform.openai.com/docs/api-reference/chat/create#chat-create-messages

Content made only of text becomes one string, its blocks joined by a newline: DeepSeek refuses content
arrays ("invalid type: sequence, expected a string", litellm#6642), and the chat templates of self-hosted
models take a string best. Text with images stays a list of parts.
"""

from __future__ import annotations

from typing import Any

from llms.adapters.anthropic.tables import IMAGE_MEDIA_TYPES, data_url, image_media_type
from llms.adapters.chat import REASONING_REPLAYED
from mcpd import wirejson
from mcpd.errors import InvalidRequest

Block = dict[str, Any]
Placed = tuple[str, Block]  # a block and where it was in the request, for the messages that name it
ChatMessage = dict[str, Any]

ROLES = ("user", "assistant", "system")  # system: a mid-conversation system message (Claude API feature)
TEXT_SEPARATOR = "\n"


def chat_messages(system: Any, messages: Any, provider: str) -> list[ChatMessage]:
    """The chat messages for an Anthropic `system` and `messages`, in order."""
    out = system_messages(system)
    calls: set[str] = set()  # the tool_use ids of the latest assistant turn, answered by tool_result blocks
    for role, blocks in turns(messages):
        if role == "system":
            out.extend(system_message(blocks))
        elif role == "user":
            out.extend(user_messages(blocks, calls, provider))
            calls = set()
        else:
            message = assistant_message(blocks, provider)
            calls = set()
            if message is not None:
                calls = {call["id"] for call in message.get("tool_calls", [])}
                out.append(message)
    return out


def turns(messages: Any) -> list[tuple[str, list[Placed]]]:
    """(role, blocks) per turn; consecutive user or assistant messages are one turn, as Anthropic combines
    them (https://docs.anthropic.com/en/api/messages#body-messages)."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: a non-empty list of messages is required.")
    result: list[tuple[str, list[Placed]]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where} must be an object.")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequest(f"{where}.role must be 'user', 'assistant' or 'system'.")
        blocks = content_blocks(message.get("content"), f"{where}.content")
        if result and result[-1][0] == role and role != "system":
            result[-1][1].extend(blocks)
        else:
            result.append((role, blocks))
    return result


def content_blocks(content: Any, where: str) -> list[Placed]:
    """A message's content as placed blocks (a string is one text block)."""
    if isinstance(content, str):
        return [(where, {"type": "text", "text": content})]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where} must be a string or a list of content blocks.")
    placed: list[Placed] = []
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{where}[{j}] must be a content block with a type.")
        placed.append((f"{where}[{j}]", block))
    return placed


def _text(block: Block, where: str) -> str:
    """A text block's text, checked (its cache_control and citations are not the chat provider's)."""
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"{where}.text must be a string.")
    return text


def _joined(texts: list[str]) -> str:
    return TEXT_SEPARATOR.join(text for text in texts if text)


def _not_supported(where: str, kind: str, provider: str) -> InvalidRequest:
    return InvalidRequest(f"{where}.type: {kind!r} blocks are not supported for {provider}.")


def _only_text(blocks: list[Placed], what: str) -> list[str]:
    """The texts of blocks that may only be text (system prompts)."""
    texts = []
    for where, block in blocks:
        if block["type"] != "text":
            raise InvalidRequest(f"{where}.type: only text blocks are allowed in {what}.")
        texts.append(_text(block, where))
    return texts


def system_messages(system: Any) -> list[ChatMessage]:
    """The top-level `system` (a string or text blocks, in order) as one system message."""
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if not isinstance(system, list):
        raise InvalidRequest("system must be a string or a list of text blocks.")
    # Claude Code's first block is its attribution (client version, conversation fingerprint), which only
    # api.anthropic.com strips; to a chat provider it is text like the rest, kept where it is.
    text = _joined(_only_text(content_blocks(system, "system"), "system"))
    return [{"role": "system", "content": text}] if text else []


def system_message(blocks: list[Placed]) -> list[ChatMessage]:
    """A mid-conversation {"role": "system"} entry, as a system message at that place."""
    # https://platform.claude.com/docs/en/build-with-claude/mid-conversation-system-messages
    text = _joined(_only_text(blocks, "system messages"))
    return [{"role": "system", "content": text}] if text else []


def user_messages(blocks: list[Placed], calls: set[str], provider: str) -> list[ChatMessage]:
    """A user turn: a tool message per tool_result (in order, first: chat wants them right after the
    assistant's tool_calls), then one user message with the turn's text and images."""
    tools: list[ChatMessage] = []
    moved: list[dict[str, Any]] = []  # images of tool results, which a tool message cannot carry
    parts: list[dict[str, Any]] = []
    for where, block in blocks:
        kind = block["type"]
        if kind == "tool_result":
            message, images = tool_message(block, where, calls, provider)
            tools.append(message)
            moved.extend(images)
        elif kind == "text":
            parts.append({"type": "text", "text": _text(block, where)})
        elif kind == "image":
            parts.append(image_part(block, where, provider))
        elif kind in ("tool_use", "thinking", "redacted_thinking"):
            raise InvalidRequest(f"{where}.type: {kind!r} blocks are not allowed in user messages.")
        else:  # document, search_result, container_upload, server tool results, ...
            raise _not_supported(where, kind, provider)
    content = _content(moved + parts)
    return tools + ([{"role": "user", "content": content}] if content else [])


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """Chat content for parts: one string when they are all text, else the parts without empty text."""
    if all(part["type"] == "text" for part in parts):
        return _joined([part["text"] for part in parts])
    return [part for part in parts if part["type"] != "text" or part["text"]]


def tool_message(block: Block, where: str, calls: set[str], provider: str) -> tuple[ChatMessage, list[dict]]:
    """A `tool` message for a tool_result block, and the image parts it held."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.tool_use_id must be a non-empty string.")
    # https://docs.anthropic.com/en/docs/build-with-claude/tool-use: a tool_result answers a tool_use of
    # the previous assistant message (chat providers refuse a tool message that answers no call).
    if call_id not in calls:
        raise InvalidRequest(f"{where}.tool_use_id {call_id!r} answers no tool_use of the preceding assistant message.")
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise InvalidRequest(f"{where}.is_error must be a boolean.")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for item_where, item in [] if content is None else content_blocks(content, f"{where}.content"):
        if item["type"] == "text":
            texts.append(_text(item, item_where))
        elif item["type"] == "image":
            # A tool message holds text only: the image follows in a user message right after the tool
            # messages (user_messages), where a chat model can see it.
            images.append(image_part(item, item_where, provider))
        else:  # document, search_result, tool_reference (tool search)
            raise _not_supported(item_where, item["type"], provider)
    text = _joined(texts)
    if is_error:  # chat has no error flag on a tool message: the model reads it from the text
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def image_part(block: Block, where: str, provider: str) -> dict[str, Any]:
    """An image_url part for an image block: a base64 source as a data: URL, a url source as it is."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        written = source.get("media_type")
        media = image_media_type(written) if isinstance(written, str) else None
        if media is None:
            raise InvalidRequest(f"{where}.source.media_type must be one of {', '.join(IMAGE_MEDIA_TYPES)}.")
        data = source.get("data")
        if not isinstance(data, str) or not data:
            raise InvalidRequest(f"{where}.source.data must be a non-empty base64 string.")
        url = data_url(media, data)
    elif kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise InvalidRequest(f"{where}.source.url must be an http(s) URL.")
    elif isinstance(kind, str):  # file: Anthropic's Files API, which a chat provider cannot read
        raise InvalidRequest(f"{where}.source.type: {kind!r} image sources are not supported for {provider}.")
    else:
        raise InvalidRequest(f"{where}.source must be an object with a type.")
    return {"type": "image_url", "image_url": {"url": url}}


def assistant_message(blocks: list[Placed], provider: str) -> ChatMessage | None:
    """An assistant turn: its text as content, its tool_use blocks as tool_calls (None when nothing is
    left, e.g. thinking alone)."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for where, block in blocks:
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block, where))
        elif kind == "tool_use":
            calls.append(tool_call(block, where))
        elif kind == "thinking":
            thinking = block.get("thinking")
            if isinstance(thinking, str):
                thoughts.append(thinking)
        elif kind == "redacted_thinking":
            pass  # encrypted by Anthropic: no chat provider can read it
        elif kind in ("tool_result", "image"):
            raise InvalidRequest(f"{where}.type: {kind!r} blocks are not allowed in assistant messages.")
        else:  # server_tool_use, web_search_tool_result, mcp_tool_use, ...
            raise _not_supported(where, kind, provider)
    text = _joined(texts)
    if not text and not calls:
        return None
    message: ChatMessage = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    reasoning = _joined(thoughts)
    if reasoning and provider in REASONING_REPLAYED:  # dropped for the others, which cannot take it back
        message["reasoning_content"] = reasoning
    return message


def tool_call(block: Block, where: str) -> dict[str, Any]:
    """A chat tool call for a tool_use block: arguments are the compact JSON of its input."""
    call_id, name, value = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.id must be a non-empty string.")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name must be a non-empty string.")
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}.input must be an object.")
    arguments = wirejson.dumps(value).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
