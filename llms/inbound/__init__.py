"""The inbound APIs mcpd speaks to its clients, one module each: what a call looks like in that API, and
how a reply and a stream in the pivot format (chat.completions) or in the API's own (a passthrough)
turn into what its clients expect. Providers are on the other side (llms/adapters)."""
