"""Usage from OpenAI-style ``usage`` objects: both API dialects, hostile values refused."""

from __future__ import annotations

import pytest

from paywire.meter import MAX_TOKENS, InvalidUsage, Usage


def test_chat_completions_usage() -> None:
    usage = Usage.from_openai(
        {
            "prompt_tokens": 1200,
            "completion_tokens": 80,
            "total_tokens": 1280,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 40},
        }
    )
    assert usage == Usage(1200, 80, 1024)
    assert usage.uncached_input_tokens == 176
    assert usage.total_tokens == 1280


def test_responses_api_usage() -> None:
    usage = Usage.from_openai(
        {
            "input_tokens": 36,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 123,
        }
    )
    assert usage == Usage(36, 87, 0)


def test_minimal_and_null_details() -> None:
    assert Usage.from_openai({"prompt_tokens": 3, "completion_tokens": 4}) == Usage(3, 4)
    assert Usage.from_openai(
        {
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "prompt_tokens_details": None,
            "total_tokens": None,
        }
    ) == Usage(3, 4)
    assert Usage.from_openai(
        {"prompt_tokens": 3, "completion_tokens": 4, "prompt_tokens_details": {}}
    ) == Usage(3, 4)


def test_both_dialects_must_agree() -> None:
    both = {"prompt_tokens": 5, "completion_tokens": 6, "input_tokens": 5, "output_tokens": 6}
    assert Usage.from_openai(both) == Usage(5, 6)
    with pytest.raises(InvalidUsage, match="different counts"):
        Usage.from_openai({**both, "output_tokens": 7})


def test_round_trip_through_openai_shape() -> None:
    usage = Usage(10, 20, 5)
    assert Usage.from_openai(usage.to_openai()) == usage


@pytest.mark.parametrize(
    ("usage", "match"),
    [
        (None, "JSON object"),
        ([1, 2], "JSON object"),
        ({}, "no token counts"),
        ({"total_tokens": 3}, "no token counts"),
        ({"prompt_tokens": 3}, "no 'completion_tokens'"),
        ({"output_tokens": 3}, "no 'input_tokens'"),
        ({"prompt_tokens": -1, "completion_tokens": 0}, "negative"),
        ({"prompt_tokens": 1.0, "completion_tokens": 0}, "whole number"),
        ({"prompt_tokens": "12", "completion_tokens": 0}, "whole number"),
        ({"prompt_tokens": True, "completion_tokens": 0}, "whole number"),
        ({"prompt_tokens": None, "completion_tokens": 0}, "whole number"),
        ({"prompt_tokens": 10**400, "completion_tokens": 0}, "bound"),
        ({"prompt_tokens": MAX_TOKENS + 1, "completion_tokens": 0}, "bound"),
        ({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 4}, "total_tokens"),
        ({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": -3}, "negative"),
        ({"prompt_tokens": 1, "completion_tokens": 0, "prompt_tokens_details": 5}, "object"),
        (
            {
                "prompt_tokens": 1,
                "completion_tokens": 0,
                "prompt_tokens_details": {"cached_tokens": 2},
            },
            "more than input",
        ),
        (
            {
                "prompt_tokens": 1,
                "completion_tokens": 0,
                "prompt_tokens_details": {"cached_tokens": -1},
            },
            "negative",
        ),
    ],
)
def test_hostile_usage_is_refused(usage: object, match: str) -> None:
    with pytest.raises(InvalidUsage, match=match) as caught:
        Usage.from_openai(usage)
    assert caught.value.code == "invalid_usage"


def test_usage_adds_up_within_bounds() -> None:
    assert Usage(1, 2, 1) + Usage(3, 4, 0) == Usage(4, 6, 1)
    with pytest.raises(InvalidUsage, match="bound"):
        Usage(MAX_TOKENS, 0) + Usage(1, 0)
    with pytest.raises(TypeError):
        Usage(1, 2) + 3  # type: ignore[operator]


def test_direct_construction_is_checked() -> None:
    with pytest.raises(InvalidUsage):
        Usage(1, -2)
    with pytest.raises(InvalidUsage):
        Usage(1, 2, 3)
    with pytest.raises(InvalidUsage):
        Usage(1.5, 2)  # type: ignore[arg-type]
