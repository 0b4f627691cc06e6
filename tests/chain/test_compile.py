"""Compiling the Vyper contract with the `vyper` package, and the on-disk cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paywire.chain import ContractCompileFailed, compile_vyper, paywire_usd
from paywire.chain.compile import (
    CACHE_DIR_ENV,
    MAX_SOURCE_BYTES,
    PAYWIRE_USD_SOURCE,
    contract_source,
    default_cache_dir,
)

SMALL = """# pragma version ~=0.4.3
# pragma evm-version shanghai
x: public(uint256)
"""


def test_cache_is_written_then_read(tmp_path: Path) -> None:
    first = compile_vyper(SMALL, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("vyper-*.json")
    # Mark the cached artifact: the next compile must return it, not run the compiler.
    data = json.loads(cached.read_text())
    data["compiler"] = "vyper from-the-cache"
    cached.write_text(json.dumps(data))
    second = compile_vyper(SMALL, cache_dir=tmp_path)
    assert second.compiler == "vyper from-the-cache"
    assert (second.abi, second.bytecode) == (first.abi, first.bytecode)
    # Another source is another entry.
    compile_vyper(SMALL + "y: public(uint256)\n", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("vyper-*.json"))) == 2


@pytest.mark.parametrize(
    "damage", [b"", b"not json", b"[]", b'{"format": 1}', b'{"format": 99, "abi": []}']
)
def test_damaged_cache_recompiles(tmp_path: Path, damage: bytes) -> None:
    good = compile_vyper(SMALL, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("vyper-*.json")
    cached.write_bytes(damage)
    assert compile_vyper(SMALL, cache_dir=tmp_path) == good
    assert json.loads(cached.read_text())["format"] == 1  # rewritten


def test_unwritable_cache_still_compiles(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    assert compile_vyper(SMALL, cache_dir=blocked).bytecode


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    monkeypatch.delenv(CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "paywire"


def test_bad_sources_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractCompileFailed, match="could not compile"):
        compile_vyper("def broken(:\n", cache_dir=tmp_path)
    with pytest.raises(ContractCompileFailed, match="limit"):
        compile_vyper("#" * (MAX_SOURCE_BYTES + 1), cache_dir=tmp_path)
    with pytest.raises(ContractCompileFailed, match="text"):
        compile_vyper(b"x: uint256", cache_dir=tmp_path)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_the_stablecoin_abi() -> None:
    contract = paywire_usd()
    assert contract.compiler == "vyper 0.4.3"
    assert {
        "name",
        "symbol",
        "version",
        "decimals",
        "totalSupply",
        "balanceOf",
        "allowance",
        "transfer",
        "transferFrom",
        "approve",
        "mint",
        "DOMAIN_SEPARATOR",
        "transferWithAuthorization",
        "receiveWithAuthorization",
        "cancelAuthorization",
        "authorizationState",
    } <= contract.function_names()
    (twa,) = [f for f in contract.abi if f.get("name") == "transferWithAuthorization"]
    # The ABI the official x402 facilitator calls for 65-byte signatures.
    assert [i["type"] for i in twa["inputs"]] == [
        "address",
        "address",
        "uint256",
        "uint256",
        "uint256",
        "bytes32",
        "uint8",
        "bytes32",
        "bytes32",
    ]
    events = {e["name"] for e in contract.abi if e.get("type") == "event"}
    assert events == {"Transfer", "Approval", "AuthorizationUsed", "AuthorizationCanceled"}


def test_the_stablecoin_runs_on_shanghai() -> None:
    """No opcode newer than Shanghai (ganache's EVM): no transient storage, MCOPY, blobs."""
    import vyper  # type: ignore[import-untyped]

    source = contract_source(PAYWIRE_USD_SOURCE)
    assert "# pragma evm-version shanghai" in source
    opcodes = vyper.compile_code(source, output_formats=["opcodes"])["opcodes"].split()
    assert not {"TLOAD", "TSTORE", "MCOPY", "BLOBHASH", "BLOBBASEFEE"} & set(opcodes)
    assert "PUSH0" in opcodes  # Shanghai's own opcode: the pragma took effect
