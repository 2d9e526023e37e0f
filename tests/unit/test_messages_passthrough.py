"""The relay of a Messages passthrough: the provider's bytes as they came, a copy read for usage."""

from __future__ import annotations

from llms.inbound.messages.passthrough import PING, PassthroughRelay
from llms.streaming import Event


def test_the_passthrough_relay_pings_only_between_the_providers_events():
    relay = PassthroughRelay()
    relay.feed(b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":5}}}\n\n')
    assert relay.keepalive() == PING
    relay.feed(b'event: content_block_delta\ndata: {"type":"content_bl')  # half an event, then silence
    assert relay.keepalive() is None
    relay.feed(b'ock_delta"}\n\n')
    assert relay.keepalive() == PING and relay.usage.prompt_tokens == 5


def test_the_passthrough_relay_relays_bytes_as_they_came_and_reads_usage_and_the_end():
    relay = PassthroughRelay()
    first = b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":5,'
    rest = (b'"cache_read_input_tokens":100}}}\r\n\r\nevent: message_delta\ndata: {"type":"message_delta",'
            b'"usage":{"output_tokens":9}}\n\nevent: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert relay.feed(first) == [Event(first, kind="raw")] and not relay.done
    assert relay.feed(rest) == [Event(rest, kind="raw")] and relay.done
    assert (relay.usage.prompt_tokens, relay.usage.cache_read_tokens, relay.usage.completion_tokens) == (105, 100, 9)
    assert relay.failed is None


def test_a_providers_error_event_fails_the_relay_after_passing_it_on():
    relay = PassthroughRelay()
    error = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    assert relay.feed(error) == [Event(error, kind="raw")]
    assert relay.done and relay.failed is not None and relay.failed.code == "upstream_overloaded"
