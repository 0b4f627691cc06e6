"""Offline token counting for OpenAI models: tiktoken with the files bpe-openai ships."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import sys

import pytest

from paywire.meter import InvalidUsage, TokenizerUnavailable, count_tokens, load_encoding
from paywire.meter.tokens import ENCODING_NAMES, MAX_COUNT_CHARS, encoding_file

needs_tiktoken = pytest.mark.skipif(
    importlib.util.find_spec("tiktoken") is None or importlib.util.find_spec("bpe_openai") is None,
    reason="the `tokenizers` extra (tiktoken, bpe-openai) is not installed",
)

URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def _no_network(path: str) -> bytes:
    raise AssertionError(f"tiktoken tried to fetch {path}")


@needs_tiktoken
@pytest.mark.parametrize("name", ENCODING_NAMES)
def test_encodings_equal_tiktokens_own_definitions(
    name: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paywire's copy of each encoding (pattern, special tokens, ranks) equals what tiktoken's
    own constructor builds from the same file, put where tiktoken's cache looks for it."""
    import tiktoken
    import tiktoken.load
    from tiktoken_ext import openai_public

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    data = gzip.decompress(encoding_file(name).read_bytes())
    (cache / hashlib.sha1(URL.format(name).encode()).hexdigest()).write_bytes(data)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setattr(tiktoken.load, "read_file", _no_network)

    official = tiktoken.Encoding(**getattr(openai_public, name)())
    ours = load_encoding(name)
    assert ours._pat_str == official._pat_str
    assert ours._special_tokens == official._special_tokens
    assert ours._mergeable_ranks == official._mergeable_ranks
    sample = "Hello, world! naïve café 日本語 1234567 <|endoftext|> \n\n  indented\tcode();"
    assert ours.encode(sample, disallowed_special=()) == official.encode(
        sample, disallowed_special=()
    )


@needs_tiktoken
def test_known_token_ids() -> None:
    assert load_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert load_encoding("o200k_base").encode("hello world") == [24912, 2375]


@needs_tiktoken
@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("o3", "o200k_base"),
        ("openai/gpt-4o", "o200k_base"),
    ],
)
def test_models_count_with_their_encoding(model: str, encoding: str) -> None:
    text = "Metering AI tokens, exactly."
    assert count_tokens(model, text) == len(load_encoding(encoding).encode(text))


@needs_tiktoken
def test_special_token_text_counts_as_plain_text() -> None:
    # A prompt may contain "<|endoftext|>"; it is text, not the special token, and no error.
    assert count_tokens("gpt-4o", "<|endoftext|>") > 1


@needs_tiktoken
def test_chat_messages_follow_openais_rule() -> None:
    enc = load_encoding("o200k_base")
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Count me.", "name": "ada"},
    ]
    expected = 3  # reply priming
    for message in messages:
        expected += 3 + sum(len(enc.encode(value)) for value in message.values())
    expected += 1  # the name
    assert count_tokens("gpt-4o", messages) == expected
    parts = [{"role": "user", "content": [{"type": "text", "text": "Count me."}]}]
    plain = [{"role": "user", "content": "Count me."}]
    assert count_tokens("gpt-4o", parts) == count_tokens("gpt-4o", plain)


@needs_tiktoken
@pytest.mark.parametrize("model", ["llama-3-70b", "claude-3-5-sonnet", "text-davinci-003"])
def test_models_without_an_offline_tokenizer_are_refused(model: str) -> None:
    with pytest.raises(TokenizerUnavailable, match="upstream must report usage") as caught:
        count_tokens(model, "hi")
    assert caught.value.code == "tokenizer_unavailable"


@needs_tiktoken
@pytest.mark.parametrize(
    ("content", "error"),
    [
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
            TokenizerUnavailable,
        ),
        ([{"role": "assistant", "content": "", "tool_calls": []}], TokenizerUnavailable),
        ([{"role": "user"}], InvalidUsage),
        ([{"role": "user", "content": 3}], InvalidUsage),
        (["hi"], InvalidUsage),
        (b"hi", InvalidUsage),
        (3, InvalidUsage),
        ("x" * (MAX_COUNT_CHARS + 1), InvalidUsage),
        ([{"role": "user", "content": "x" * (MAX_COUNT_CHARS + 1)}], InvalidUsage),
    ],
)
def test_content_that_cannot_be_counted_is_refused(content: object, error: type) -> None:
    with pytest.raises(error):
        count_tokens("gpt-4o", content)  # type: ignore[arg-type]


@needs_tiktoken
def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(TokenizerUnavailable, match="not available offline"):
        load_encoding("p50k_base")


@needs_tiktoken
def test_long_repetitive_text_is_counted_quickly() -> None:
    # Older tiktoken was quadratic on long runs without spaces; 0.14 is not.
    assert count_tokens("gpt-4o", "A" * 200_000) == 25_000


def test_without_tiktoken_counting_is_refused_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tiktoken", None)
    monkeypatch.setitem(sys.modules, "tiktoken.model", None)
    with pytest.raises(TokenizerUnavailable, match="tiktoken is not installed"):
        count_tokens("gpt-4o", "hi")
