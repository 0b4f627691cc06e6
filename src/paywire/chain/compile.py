"""Compile Vyper contracts with the `vyper` package (no downloads), cached on disk.

A compile takes a fraction of a second, but the demo, every test session and every CLI
command would pay it; the cache keys each result by (source hash, vyper version), so a
changed contract or compiler recompiles and nothing stale is ever served. The cache is
an optimisation only: an unwritable or corrupt cache falls back to compiling.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from paywire.chain.errors import ContractCompileFailed

CACHE_DIR_ENV = "PAYWIRE_CACHE_DIR"
"""Environment variable naming the cache directory (else $XDG_CACHE_HOME/paywire)."""

MAX_SOURCE_BYTES = 256 * 1024
"""A contract source past this is not one of ours; refuse before handing it to the compiler."""

MAX_CACHE_FILE_BYTES = 4 * 1024 * 1024
"""A cached artifact past this is not one we wrote; recompile instead of parsing it."""

CACHE_FORMAT = 1
"""Bumped when the cached JSON layout changes, so old files are never misread."""

PAYWIRE_USD_SOURCE = "paywire_usd.vy"
"""The stablecoin contract, shipped inside the package (`paywire.chain.contracts`)."""

PAYWIRE_CHANNELS_SOURCE = "paywire_channels.vy"
"""The payment channels contract (one deployment per token), shipped beside it."""


@dataclass(frozen=True, slots=True)
class CompiledContract:
    """A compiled contract: its ABI (JSON entries) and its deployment bytecode."""

    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    compiler: str
    """The compiler that produced it, e.g. ``vyper 0.4.3``."""

    def function_names(self) -> frozenset[str]:
        """Names of the functions in the ABI (for checks and tests)."""
        return frozenset(str(item["name"]) for item in self.abi if item.get("type") == "function")


def default_cache_dir() -> Path:
    """Where compiled contracts are kept: $PAYWIRE_CACHE_DIR, else $XDG_CACHE_HOME/paywire,
    else ~/.cache/paywire."""
    explicit = os.environ.get(CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "paywire"


def vyper_version() -> str:
    """The installed vyper's version (imports the compiler: ~0.3 s the first time)."""
    return str(_vyper().__version__)


def _vyper() -> Any:
    try:
        import vyper  # type: ignore[import-untyped]
    except ImportError:
        raise ContractCompileFailed(
            "compiling contracts needs the chain extra (pip install 'paywire[chain]')"
        ) from None
    return vyper


def compile_vyper(source: str, *, cache_dir: Path | None = None) -> CompiledContract:
    """Compile Vyper `source` to ABI and bytecode, from the disk cache when it is there.

    `cache_dir` defaults to `default_cache_dir()`. Raises `ContractCompileFailed` with the
    compiler's message when the source does not compile.
    """
    if not isinstance(source, str):
        raise ContractCompileFailed(f"contract source must be text, not {type(source).__name__}")
    encoded = source.encode("utf-8", "surrogatepass")
    if len(encoded) > MAX_SOURCE_BYTES:
        raise ContractCompileFailed(
            f"contract source is {len(encoded)} bytes; the limit is {MAX_SOURCE_BYTES}"
        )
    version = vyper_version()
    key = hashlib.sha256(f"{CACHE_FORMAT}\0vyper {version}\0".encode() + encoded).hexdigest()
    folder = default_cache_dir() if cache_dir is None else cache_dir
    path = folder / f"vyper-{key}.json"
    cached = _read_cache(path)
    if cached is not None:
        return cached
    compiled = _compile(source, version)
    _write_cache(path, compiled)
    return compiled


@functools.cache
def paywire_usd() -> CompiledContract:
    """The compiled Paywire USD stablecoin (ERC-20 + EIP-712 + EIP-3009, 6 decimals).

    Compiled once per process, and once per machine thanks to the disk cache.
    """
    return compile_vyper(contract_source(PAYWIRE_USD_SOURCE))


@functools.cache
def paywire_channels() -> CompiledContract:
    """The compiled payment channels contract (deposits, cumulative vouchers, claims in
    batches, cooperative close, withdrawal after a challenge period). Cached as above."""
    return compile_vyper(contract_source(PAYWIRE_CHANNELS_SOURCE))


def contract_source(name: str) -> str:
    """The text of a contract shipped in `paywire.chain.contracts`."""
    return resources.files("paywire.chain.contracts").joinpath(name).read_text(encoding="utf-8")


def _compile(source: str, version: str) -> CompiledContract:
    try:
        out = _vyper().compile_code(source, output_formats=["abi", "bytecode"])
    except Exception as error:  # vyper raises its own exception tree; keep its message
        raise ContractCompileFailed(
            f"vyper {version} could not compile the contract: {error}"
        ) from None
    bytecode = str(out["bytecode"])
    return CompiledContract(
        abi=tuple(dict(item) for item in out["abi"]),
        bytecode=bytes.fromhex(bytecode.removeprefix("0x")),
        compiler=f"vyper {version}",
    )


def _read_cache(path: Path) -> CompiledContract | None:
    try:
        if path.stat().st_size > MAX_CACHE_FILE_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        abi = data["abi"]
        if data["format"] != CACHE_FORMAT or not isinstance(abi, list):
            return None
        if not all(isinstance(item, dict) for item in abi):
            return None
        return CompiledContract(
            abi=tuple(abi),
            bytecode=bytes.fromhex(data["bytecode"]),
            compiler=str(data["compiler"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: compile again


def _write_cache(path: Path, compiled: CompiledContract) -> None:
    text = json.dumps(
        {
            "format": CACHE_FORMAT,
            "compiler": compiled.compiler,
            "abi": list(compiled.abi),
            "bytecode": compiled.bytecode.hex(),
        },
        sort_keys=True,
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader in another process sees the whole file or none.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".vyper-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        return  # a read-only home or a full disk: the compile still succeeded
