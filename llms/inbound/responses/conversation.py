"""A Responses `instructions` and `input` -> chat.completions `messages`, one function per item kind.

Responses input: https://platform.openai.com/docs/api-reference/responses/create#responses-create-input
Chat messages:   https://platform.openai.com/docs/api-reference/chat/create#chat-create-messages

A run of assistant items (messages, function and custom tool calls; reasoning between them) is one chat
assistant message: its text, then its calls (WIRE-FORMATS §5.1). Each function_call_output or
custom_tool_call_output is a `tool` message, answering a call of the assistant message just before it;
images in outputs, which a tool message cannot carry, follow in one user message after them. Content made
only of text is one string (DeepSeek refuses content arrays, litellm#6642; chat templates take strings best).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llms.adapters.anthropic.tables import IMAGE_MEDIA_TYPES, image_media_type, parse_data_url
from llms.adapters.chat import REASONING_REPLAYED
from llms.inbound.responses.tools import NAMESPACE_NAME, chat_name, custom_arguments
from mcpd.errors import InvalidRequest

ChatMessage = dict[str, Any]
Part = dict[str, Any]

TEXT_SEPARATOR = "\n"
ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
TEXT_PARTS = ("input_text", "output_text")
CALLS = {"function_call": "arguments", "custom_tool_call": "input"}
OUTPUTS = ("function_call_output", "custom_tool_call_output")
# Items of OpenAI's built-in tools: their calls ran at OpenAI (or under its schemas), nothing a chat model
# can be shown as its own.
BUILT_IN_ITEMS = frozenset({
    "file_search_call", "web_search_call", "computer_call", "computer_call_output", "image_generation_call",
    "code_interpreter_call", "local_shell_call", "local_shell_call_output", "shell_call", "shell_call_output",
    "apply_patch_call", "apply_patch_call_output", "mcp_list_tools", "mcp_approval_request",
    "mcp_approval_response", "mcp_call", "tool_search_call", "tool_search_output", "additional_tools",
    "compaction", "compaction_trigger", "program", "program_output",
})


def _invalid(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(f"{param}{message}", param=param)


@dataclass
class Conversation:
    """The chat messages as they are built, and what the audit row should know."""

    provider: str
    messages: list[ChatMessage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run: ChatMessage | None = None  # the assistant message the next assistant items join
    calls: dict[str, str] = field(default_factory=dict)  # unanswered call_id -> the item that made it
    images: list[Part] = field(default_factory=list)  # of tool outputs, for the user message after them
    reasoning: list[str] = field(default_factory=list)  # replayed reasoning for the next assistant message
    dropped: int = 0  # reasoning items not sent


def chat_messages(instructions: Any, items: Any, provider: str) -> tuple[list[ChatMessage], list[str]]:
    """The chat messages for a Responses `instructions` and `input`, and notes for the audit row."""
    conversation = Conversation(provider)
    if instructions is not None and not isinstance(instructions, str):
        raise _invalid(" must be a string.", "instructions")
    if instructions:
        conversation.messages.append({"role": "system", "content": instructions})
    for i, item in enumerate(input_items(items)):
        add_item(conversation, item, f"input[{i}]")
    end_outputs(conversation, None)
    if conversation.reasoning:
        conversation.dropped += len(conversation.reasoning)  # reasoning that no assistant turn followed
    if conversation.dropped:
        many = "s" if conversation.dropped > 1 else ""
        conversation.notes.append(f"dropped {conversation.dropped} reasoning item{many}: not replayable to {provider}")
    return conversation.messages, conversation.notes


def input_items(items: Any) -> list[dict[str, Any]]:
    """`input` as items: a string is one user message."""
    if isinstance(items, str):
        return [{"type": "message", "role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise _invalid(": a string or a non-empty list of items is required.", "input")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise _invalid(" must be an object.", f"input[{i}]")
    return items


def add_item(conversation: Conversation, item: dict[str, Any], where: str) -> None:
    """One input item into the conversation."""
    kind = item.get("type", "message" if "role" in item else None)
    if not isinstance(kind, str):  # nor looked up in the tables below (a list or an object cannot be)
        raise _invalid(f": unknown item type {kind!r}.", f"{where}.type")
    if kind in OUTPUTS:
        conversation.messages.append(tool_message(conversation, item, where))
        return
    assistant_side = kind in CALLS or kind == "reasoning" or (kind == "message" and item.get("role") == "assistant")
    if conversation.run is None or not assistant_side:  # anything but the run going on
        end_outputs(conversation, where)
    if kind == "message":
        message(conversation, item, where)
    elif kind in CALLS:
        assistant_run(conversation).setdefault("tool_calls", []).append(tool_call(conversation, item, kind, where))
    elif kind == "reasoning":
        reasoning(conversation, item)
    elif kind == "item_reference":
        raise _invalid(": 'item_reference' items point at stored items; mcpd is stateless and keeps none, so "
                       "send the item itself.", f"{where}.type")
    elif kind in BUILT_IN_ITEMS:
        raise _invalid(f": {kind!r} items of OpenAI's built-in tools are not supported for {conversation.provider}.",
                       f"{where}.type")
    else:
        raise _invalid(f": unknown item type {kind!r}.", f"{where}.type")


def end_outputs(conversation: Conversation, where: str | None) -> None:
    """Before any item but a tool output: every call of the latest assistant message must be answered,
    and the images its outputs held follow in a user message."""
    if conversation.calls:
        call_id, made_at = next(iter(conversation.calls.items()))
        at = f" before {where}" if where else ""
        raise _invalid(f": the call {call_id!r} has no function_call_output or custom_tool_call_output{at}.",
                       made_at)
    if conversation.images:
        conversation.messages.append({"role": "user", "content": conversation.images})
        conversation.images = []


def assistant_run(conversation: Conversation) -> ChatMessage:
    """The assistant message the current run of assistant items builds (started here if needed)."""
    if conversation.run is None:
        conversation.run = {"role": "assistant", "content": None}
        if conversation.reasoning:
            conversation.run["reasoning_content"] = TEXT_SEPARATOR.join(conversation.reasoning)
            conversation.reasoning = []
        conversation.messages.append(conversation.run)
    return conversation.run


def message(conversation: Conversation, item: dict[str, Any], where: str) -> None:
    """A message item: an assistant one joins the run; the others end it."""
    role = item.get("role")
    role = ROLES.get(role) if isinstance(role, str) else None
    if role is None:
        raise _invalid(" must be 'user', 'assistant', 'system' or 'developer'.", f"{where}.role")
    parts = content_parts(item.get("content"), f"{where}.content", role, conversation.provider)
    if role == "assistant":
        run = assistant_run(conversation)
        text = _joined([part["text"] for part in parts])
        if text:
            run["content"] = TEXT_SEPARATOR.join(filter(None, (run["content"], text)))
        return
    conversation.run = None
    # system and developer: chat's system role (not every chat server or template knows developer)
    conversation.messages.append({"role": role, "content": _content(parts)})


def content_parts(content: Any, where: str, role: str, provider: str) -> list[Part]:
    """A message's content as chat parts (a string is one text part)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _invalid(" must be a string or a list of content parts.", where)
    parts = []
    for j, part in enumerate(content):
        place = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS or (kind == "refusal" and role == "assistant"):
            # A refusal the model gave earlier is still what it said.
            value = part.get("refusal" if kind == "refusal" else "text")
            if not isinstance(value, str):
                raise _invalid(" must be a string.", f"{place}.{'refusal' if kind == 'refusal' else 'text'}")
            parts.append({"type": "text", "text": value})
        elif kind == "input_image" and role == "user":
            parts.append(image_part(part, place, provider))
        elif kind in ("input_image", "refusal"):
            raise _invalid(f": {kind!r} parts are not allowed in {role} messages.", f"{place}.type")
        elif kind == "input_file":
            raise _invalid(f": 'input_file' parts are not supported for {provider}.", f"{place}.type")
        else:
            raise _invalid(f": unknown content part type {kind!r}.", f"{place}.type")
    return parts


def image_part(part: Part, where: str, provider: str) -> Part:
    """An image_url part for an input_image: a URL or a data: URL, as it is (`detail` only tunes OpenAI's
    tiling: dropped)."""
    url = part.get("image_url")
    if url is None and part.get("file_id") is not None:
        raise _invalid(": images by file_id live in OpenAI's Files API; send the image_url (or a data: URL).",
                       f"{where}.file_id")
    if not isinstance(url, str) or not url.startswith(("https://", "http://", "data:")):
        raise _invalid(" must be an http(s) URL or a data: URL.", f"{where}.image_url")
    if provider == "anthropic" and url.startswith("data:"):
        # Anthropic takes base64 images of four types only (the adapter's table, read here so that the 400
        # names the Responses field).
        parsed = parse_data_url(url)
        if parsed is None or image_media_type(parsed[0]) is None:
            raise _invalid(f": anthropic takes base64 data: URLs of {', '.join(IMAGE_MEDIA_TYPES)} only.",
                           f"{where}.image_url")
    return {"type": "image_url", "image_url": {"url": url}}


def tool_call(conversation: Conversation, item: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    """A chat tool call for a function_call (its arguments as they are) or a custom_tool_call (its input as
    the one string argument); the call_id is the chat call's id."""
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(" must be a non-empty string.", f"{where}.call_id")
    if not isinstance(name, str) or not name:
        raise _invalid(" must be a non-empty string.", f"{where}.name")
    value = item.get(CALLS[kind])
    if not isinstance(value, str):
        raise _invalid(" must be a string.", f"{where}.{CALLS[kind]}")
    namespace = item.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not NAMESPACE_NAME.fullmatch(namespace)):
        raise _invalid(" must be letters, digits, '_' or '-'.", f"{where}.namespace")
    conversation.calls[call_id] = f"{where}.call_id"
    arguments = value if kind == "function_call" else custom_arguments(value)
    return {"id": call_id, "type": "function", "function": {"name": chat_name(name, namespace),
                                                             "arguments": arguments}}


def tool_message(conversation: Conversation, item: dict[str, Any], where: str) -> ChatMessage:
    """A `tool` message for a function_call_output or custom_tool_call_output."""
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise _invalid(" must be a non-empty string.", f"{where}.call_id")
    if conversation.calls.pop(call_id, None) is None:
        # Chat providers refuse a tool message that answers no call of the assistant message before it.
        raise _invalid(f": {call_id!r} answers no call of the assistant items just before it.", f"{where}.call_id")
    conversation.run = None
    output = item.get("output")
    if isinstance(output, str):
        return {"role": "tool", "tool_call_id": call_id, "content": output}
    if not isinstance(output, list):
        raise _invalid(" must be a string or a list of content parts.", f"{where}.output")
    texts = []
    for j, part in enumerate(output):
        place = f"{where}.output[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            if not isinstance(part.get("text"), str):
                raise _invalid(" must be a string.", f"{place}.text")
            texts.append(part["text"])
        elif kind == "input_image":  # a tool message holds text only: the image follows in a user message
            conversation.images.append(image_part(part, place, conversation.provider))
        elif kind == "input_file":
            raise _invalid(f": 'input_file' parts are not supported for {conversation.provider}.", f"{place}.type")
        else:
            raise _invalid(f": unknown content part type {kind!r}.", f"{place}.type")
    return {"role": "tool", "tool_call_id": call_id, "content": _joined(texts)}


def reasoning(conversation: Conversation, item: dict[str, Any]) -> None:
    """A reasoning item: its text goes back to the providers that need it (with the next assistant
    message); the rest are dropped, noted: a chat provider cannot take reasoning back, an Anthropic thinking
    block needs a signature only Anthropic makes, and encrypted_content only OpenAI can read."""
    text = reasoning_text(item) if conversation.provider in REASONING_REPLAYED else ""
    if not text:
        conversation.dropped += 1
    elif conversation.run is not None:  # between the items of an assistant turn: part of it
        previous = conversation.run.get("reasoning_content")
        conversation.run["reasoning_content"] = TEXT_SEPARATOR.join(filter(None, (previous, text)))
    else:
        conversation.reasoning.append(text)


def reasoning_text(item: dict[str, Any]) -> str:
    """The readable text of a reasoning item: its reasoning_text content, else its summary."""
    for name, kind in (("content", "reasoning_text"), ("summary", "summary_text")):
        parts = item.get(name)
        texts = [part["text"] for part in parts if isinstance(part, dict) and part.get("type") == kind
                 and isinstance(part.get("text"), str)] if isinstance(parts, list) else []
        if _joined(texts):
            return _joined(texts)
    return ""


def _joined(texts: list[str]) -> str:
    return TEXT_SEPARATOR.join(text for text in texts if text)


def _content(parts: list[Part]) -> str | list[Part]:
    """Chat content for parts: one string when they are all text, else the parts without empty text."""
    if all(part["type"] == "text" for part in parts):
        return _joined([part["text"] for part in parts])
    return [part for part in parts if part["type"] != "text" or part["text"]]
