"""The Anthropic Messages API inbound (POST /v1/messages, what Claude Code and the Anthropic SDKs speak).

To an `anthropic` Llm it is a passthrough (passthrough.py): the body goes up with only `model` replaced,
the reply and the stream come back as the provider's bytes, read only for usage. To the other providers
it is translated through chat.completions, the pivot (to_chat.py and conversation.py there, from_chat.py
back). Errors take Anthropic's shape on this route (errors.py). All pure: dicts in and out, no HTTP.
https://docs.anthropic.com/en/api/messages
"""
