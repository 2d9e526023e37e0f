"""The shared Anthropic <-> chat tables: both directions read the same correspondence, so a round trip
through them comes back where it started."""

from __future__ import annotations

import pytest

from llms.adapters.anthropic.tables import (
    FINISH_REASONS,
    IMAGE_MEDIA_TYPES,
    STOP_REASONS,
    anthropic_tool_choice,
    anthropic_usage,
    data_url,
    finish_reason_of,
    image_media_type,
    openai_tool_choice,
    parse_data_url,
    prompt_tokens,
    stop_reason_of,
)
from llms.adapters.base import Usage


@pytest.mark.parametrize("finish", sorted(STOP_REASONS))
def test_every_finish_reason_comes_back_from_its_stop_reason(finish):
    back = finish_reason_of(stop_reason_of(finish, called_tools=False))
    assert back == ("tool_calls" if finish == "function_call" else finish)


@pytest.mark.parametrize("stop", sorted(FINISH_REASONS))
def test_every_stop_reason_maps_to_a_finish_reason_that_maps_back_to_a_stop_reason(stop):
    assert stop_reason_of(finish_reason_of(stop), called_tools=False) in STOP_REASONS.values()


@pytest.mark.parametrize(
    "choice",
    ["auto", "none", "required", {"type": "function", "function": {"name": "get_time"}}],
)
def test_every_tool_choice_round_trips(choice):
    assert openai_tool_choice(anthropic_tool_choice(choice)) == choice


@pytest.mark.parametrize("choice", ["sometimes", {"type": "function"}, {"type": "allowed_tools"}, 7, None])
def test_other_tool_choices_have_no_form(choice):
    assert anthropic_tool_choice(choice) is None
    assert openai_tool_choice({"type": choice}) is None


@pytest.mark.parametrize("media", IMAGE_MEDIA_TYPES)
def test_a_data_url_round_trips(media):
    assert parse_data_url(data_url(media, "AAAA")) == (media, "AAAA")
    assert image_media_type(media.upper()) == media


def test_image_media_types_resolve_aliases_and_refuse_the_rest():
    assert image_media_type("image/jpg") == "image/jpeg"
    assert image_media_type("image/bmp") is None
    assert parse_data_url("data:image/png,notbase64") is None


@pytest.mark.parametrize(
    ("usage", "anthropic"),
    [
        (Usage(2006, 300, 1920), {"input_tokens": 86, "cache_read_input_tokens": 1920, "output_tokens": 300}),
        (Usage(91, 14), {"input_tokens": 91, "output_tokens": 14}),
        (Usage(), {"input_tokens": 0, "output_tokens": 0}),
    ],
)
def test_usage_round_trips_with_cache_reads_counted_once(usage, anthropic):
    assert anthropic_usage(usage) == anthropic
    assert prompt_tokens(anthropic) == (usage.prompt_tokens or 0)
