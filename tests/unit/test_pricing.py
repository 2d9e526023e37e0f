"""What a call costs: prices per million tokens on the tokens the provider reported."""

from __future__ import annotations

from decimal import Decimal

from llms.pricing import Prices

GPT = Prices(input=Decimal("2.50"), output=Decimal("10.00"), cache_read=Decimal("1.25"))


def test_input_and_output_tokens_cost_their_price_per_million():
    assert GPT.cost(1_000_000, 0) == Decimal("2.5")
    assert GPT.cost(1200, 300) == Decimal("0.006")  # 1200 × 2.5e-6 + 300 × 1e-5


def test_cache_tokens_are_part_of_the_prompt_and_cost_their_own_price():
    # 10,000 prompt tokens of which 8,000 read from the cache and 1,000 written to it.
    assert GPT.cost(10_000, 0, cache_read=8000, cache_write=1000) == Decimal("0.015")
    # (1,000 fresh × 2.5 + 8,000 × 1.25 + 1,000 written at the input price 2.5) / 1e6
    claude = Prices(Decimal("3"), Decimal("15"), cache_read=Decimal("0.30"), cache_write=Decimal("3.75"))
    assert claude.cost(10_000, 500, cache_read=8000, cache_write=1000) == Decimal("0.01665")


def test_the_cost_is_unknown_without_a_price_or_a_count():
    assert Prices(input=Decimal(1)).cost(10, 10) is None
    assert GPT.cost(None, 10) is None and GPT.cost(10, None) is None


def test_free_models_cost_zero_not_unknown():
    assert Prices(Decimal(0), Decimal(0)).cost(5000, 5000) == Decimal(0)


def test_tiny_costs_keep_ten_decimal_places():
    cheap = Prices(Decimal("0.000001"), Decimal("0.000001"))
    assert cheap.cost(1, 0) == Decimal("1E-12").quantize(Decimal("0.0000000001"))  # rounds to 0E-10
    assert Prices(Decimal("0.15"), Decimal("0.60")).cost(1, 1) == Decimal("0.00000075")
