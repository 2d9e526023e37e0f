"""What OpenAI-compatible servers add to chat.completions beyond OpenAI's own fields: the one copy of each
such convention, read by every translation out of the pivot (llms/inbound/messages, llms/inbound/responses).

OpenAI chat: https://platform.openai.com/docs/api-reference/chat/object
"""

from __future__ import annotations

from typing import Any

# The names of a chat model's reasoning text: DeepSeek's (and older vLLM's) reasoning_content, vLLM's
# newer reasoning (https://github.com/vllm-project/vllm/issues/27755); servers that send both repeat it.
REASONING_FIELDS = ("reasoning_content", "reasoning")

# Providers whose thinking mode needs the reasoning of an earlier assistant turn back, as reasoning_content:
# DeepSeek refuses a tool-call turn without it ("The reasoning_content in the thinking mode must be passed
# back to the API"): https://api-docs.deepseek.com/guides/thinking_mode#tool-calls. The others cannot take
# it back, so it is dropped for them.
REASONING_REPLAYED = frozenset({"deepseek"})


def reasoning_of(message: dict[str, Any]) -> str:
    """The reasoning text of a chat message or delta ("" when none)."""
    for name in REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""
