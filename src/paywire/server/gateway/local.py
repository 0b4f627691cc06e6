"""The default upstream: the local model, SmolLM2-135M-Instruct, in process.

llama-cpp-python's `create_chat_completion` and `create_embedding` run in one worker thread
of this upstream (a `Llama` is not thread-safe, and the calls block), under
`LOCAL_MODEL_LOCK` (the model is shared with anything else in the process that uses
`load_local_model`). A stream crosses from that thread to the event loop through an asyncio
queue; closing the stream early sets a flag that the thread checks between tokens, so
generation stops within one token of the gateway stopping (a client gone, a limit reached).

Usage: non-streaming answers carry llama-cpp's own ``usage``; a stream carries none (as
llama-cpp-python streams), so the gateway counts it: the prompt with the model's own
tokenizer and chat template (the same count llama-cpp reports) and the completion as the
chunks delivered (llama-cpp-python yields one token per chunk, merging only the pieces of a
character split across tokens).

Embeddings use a second instance of the same GGUF file loaded with ``embedding=True`` and
mean pooling (576 dimensions), on first use.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar, cast

from paywire.meter import (
    LOCAL_MODEL_ID,
    LOCAL_MODEL_LOCK,
    LocalModelUnavailable,
    is_local_model,
    load_local_model,
    local_model_path,
)
from paywire.meter.local_model import DEFAULT_N_CTX, LOCAL_MODEL_SEED
from paywire.server.gateway.upstream import Json, UpstreamError

if TYPE_CHECKING:
    from llama_cpp import Llama

DEFAULT_THREADS = 1
"""Generation threads: one, because llama.cpp's threads spin-wait on each other and fall
far behind when another process shares the cores (see `paywire.meter.local_model`)."""

MAX_QUEUED = 32
"""Requests waiting for the model (it serves one at a time); past this the gateway answers
503 rather than queue without bound."""

EMBEDDING_N_CTX = 512
"""Context of the embedding instance: longer inputs are truncated, as llama-cpp does."""

PASSED_OPTIONS = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "response_format",
)
"""Request fields handed to llama-cpp besides messages and max_tokens (the rest are
OpenAI fields it does not take, or ones the gateway owns)."""

T = TypeVar("T")

_embedders_lock = threading.Lock()
_embedders: dict[int, Llama] = {}
"""Embedding instances, one per thread count, shared by every upstream of the process."""


class LocalModelUpstream:
    """SmolLM2-135M-Instruct in process (the ``llm`` extra), serving `LOCAL_MODEL_ID`."""

    description = "local SmolLM2-135M-Instruct (llama-cpp-python, in process)"

    def __init__(
        self,
        *,
        n_threads: int = DEFAULT_THREADS,
        n_ctx: int = DEFAULT_N_CTX,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.n_threads = n_threads
        self.context_window: int | None = n_ctx
        self.max_queued = max_queued
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paywire-llm")
        self._queued = 0
        self._queued_lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (else on the first request); `LocalModelUnavailable` if the
        ``llm`` extra is not installed."""
        self._model()

    def serves(self, model: str) -> bool:
        return is_local_model(model)

    async def chat(self, body: Json) -> Json:
        kwargs = _chat_kwargs(body)

        def complete() -> Json:
            model = self._model()
            with LOCAL_MODEL_LOCK:
                response: Json = model.create_chat_completion(**kwargs)  # type: ignore[assignment]
            return response

        response = await self._run(complete)
        response["model"] = body["model"]
        return response

    async def chat_stream(self, body: Json) -> AsyncGenerator[Json, None]:
        kwargs = _chat_kwargs(body)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def put(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, item))
            except RuntimeError:  # the loop is gone: nobody reads any more
                stop.set()

        def produce() -> None:
            if stop.is_set():  # closed while it waited for its turn
                return
            try:
                model = self._model()
                with LOCAL_MODEL_LOCK:
                    chunks = cast(
                        "Generator[Json, None, None]",
                        model.create_chat_completion(**kwargs, stream=True),
                    )
                    try:
                        for chunk in chunks:
                            if stop.is_set():
                                break
                            put("chunk", chunk)
                    finally:
                        chunks.close()
                put("end", None)
            except Exception as error:  # reported to the reader, never lost in the thread
                put("error", error)

        self._enter()
        try:
            loop.run_in_executor(self._executor, self._leaving(produce))
        except RuntimeError:
            self._leave()
            raise UpstreamError(
                503, "the local model is shutting down", code="unavailable"
            ) from None
        try:
            while True:
                kind, item = await queue.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise _failure(item)
                chunk: Json = item
                chunk["model"] = body["model"]
                yield chunk
        finally:
            stop.set()

    async def embeddings(self, body: Json) -> Json:
        inputs = body["input"]

        def embed() -> Json:
            embedder = self._embedding_model()
            response: Json = embedder.create_embedding(inputs)  # type: ignore[assignment]
            return response

        response = await self._run(embed)
        response["model"] = body["model"]
        return response

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _enter(self) -> None:
        with self._queued_lock:
            if self._queued >= self.max_queued:
                raise UpstreamError(
                    503, f"the local model is busy ({self._queued} requests waiting)", code="busy"
                )
            self._queued += 1

    def _leave(self) -> None:
        with self._queued_lock:
            self._queued -= 1

    def _leaving(self, work: Callable[[], T]) -> Callable[[], T]:
        def run() -> T:
            try:
                return work()
            finally:
                self._leave()

        return run

    async def _run(self, work: Callable[[], T]) -> T:
        self._enter()
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, self._leaving(work))
        except RuntimeError:
            self._leave()
            raise UpstreamError(
                503, "the local model is shutting down", code="unavailable"
            ) from None
        try:
            return await future
        except UpstreamError:
            raise
        except Exception as error:
            raise _failure(error) from None

    def _model(self) -> Llama:
        return load_local_model(
            n_threads=self.n_threads, n_ctx=self.context_window or DEFAULT_N_CTX
        )

    def _embedding_model(self) -> Llama:
        with _embedders_lock:
            embedder = _embedders.get(self.n_threads)
            if embedder is None:
                embedder = _embedders[self.n_threads] = _load_embedder(self.n_threads)
            return embedder


def _chat_kwargs(body: Json) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "messages": body["messages"],
        "max_tokens": body["max_tokens"],
        "seed": LOCAL_MODEL_SEED,
    }
    for name in PASSED_OPTIONS:
        if body.get(name) is not None:
            kwargs[name] = body[name]
    return kwargs


def _failure(error: BaseException) -> UpstreamError:
    if isinstance(error, UpstreamError):
        return error
    if isinstance(error, LocalModelUnavailable):
        return UpstreamError(503, str(error), code="local_model_unavailable")
    if isinstance(error, ValueError):  # llama-cpp's refusals: context exceeded, bad options
        return UpstreamError(400, f"the local model refused the request: {error}", code="refused")
    return UpstreamError(502, f"the local model failed: {type(error).__name__}")


def _load_embedder(n_threads: int) -> Llama:
    try:
        import llama_cpp
    except ImportError as error:
        raise LocalModelUnavailable(f"llama-cpp-python is not installed ({error})") from None
    path = local_model_path()
    captured = io.StringIO()
    # llama.cpp notes through its log callback (stderr) that the pooling differs from the
    # model's default, which is the point here: silence it for the ~0.2 s of the load.
    with contextlib.redirect_stderr(captured):
        embedder = llama_cpp.Llama(
            model_path=str(path),
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_ctx=EMBEDDING_N_CTX,
            n_batch=EMBEDDING_N_CTX,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            verbose=False,
        )
    _to_close.append(embedder)
    return embedder


_to_close: list[Llama] = []


@atexit.register
def _close_embedders() -> None:
    # As meter.local_model does for its models: a Llama left to __del__ at interpreter exit
    # finds llama_cpp's globals gone and prints a TypeError.
    while _to_close:
        _to_close.pop().close()


__all__ = ["LOCAL_MODEL_ID", "LocalModelUpstream"]
