"""The Anthropic Messages API (POST /v1/messages) for chat.completions providers: a request translated to
the chat pivot (to_chat), the provider's chat.completion or chunk stream translated back (from_chat), and
mcpd's errors in Anthropic's shape (errors). Pure: plain dicts in and out, no Django, no HTTP."""
