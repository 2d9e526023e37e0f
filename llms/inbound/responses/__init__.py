"""The OpenAI Responses API inbound (POST /v1/responses, what Codex CLI and the openai SDKs' `responses`
speak), stateless: mcpd keeps no responses, so every call carries its whole conversation.

To the providers other than openai it is translated through chat.completions, the pivot: to_chat.py
(with conversation.py and tools.py) turns a Responses request into a chat body, which the provider's
adapter sends (the passthrough adapter as it is, the anthropic adapter on to the Messages API: the same
pivot, no other copy of the Anthropic mapping); from_chat.py turns the chat.completion or the chunk
stream back into a Response or Responses stream events. Correspondences: tables.py; errors: errors.py.
All pure: dicts in and out, no HTTP. https://platform.openai.com/docs/api-reference/responses
"""
