"""Keys, mandates and chains for the mandate tests (deterministic, so ids are stable)."""

from __future__ import annotations

import dataclasses
from typing import Any

from paywire.crypto.keys import PrivateKey
from paywire.mandate import AssetLimit, Mandate, MandateChain, SignedMandate, Window

PRINCIPAL = PrivateKey.from_bytes((1001).to_bytes(32, "big"))
AGENT = PrivateKey.from_bytes((1002).to_bytes(32, "big"))
SUB_AGENT = PrivateKey.from_bytes((1003).to_bytes(32, "big"))
SUB_SUB_AGENT = PrivateKey.from_bytes((1004).to_bytes(32, "big"))
OUTSIDER = PrivateKey.from_bytes((1005).to_bytes(32, "big"))
PAYEE = PrivateKey.from_bytes((2001).to_bytes(32, "big")).address
OTHER_PAYEE = PrivateKey.from_bytes((2002).to_bytes(32, "big")).address

LEDGER = "paywire:abcdefghijklmnop"
BASE = "eip155:8453"
TOKEN = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"  # USDC on Base
ORIGIN = "https://api.example.com"

START = 1_700_000_000
END = START + 30 * 86400
NONCE = bytes(range(32))


def usdc_limit(
    total: int = 1_000_000,
    per_payment: int = 100_000,
    windows: tuple[tuple[int, int], ...] = ((3600, 300_000), (86400, 600_000)),
    network: str = LEDGER,
    asset: str = "USDC",
) -> AssetLimit:
    return AssetLimit(
        network, asset, total, per_payment, tuple(Window(w, limit) for w, limit in windows)
    )


def root_mandate(**changes: Any) -> Mandate:
    """A root mandate by PRINCIPAL for AGENT, with every list filled; `changes` override."""
    fields: dict[str, Any] = {
        "issuer": PRINCIPAL.address,
        "agent": AGENT.address,
        "limits": (usdc_limit(), usdc_limit(50_000, 10_000, (), BASE, TOKEN)),
        "payees": (PAYEE, OTHER_PAYEE),
        "origins": (ORIGIN, "https://tools.example.org:8443"),
        "networks": (LEDGER, BASE),
        "valid_after": START,
        "valid_before": END,
        "purpose": "research for the quarterly report",
        "task_id": "task-42",
        "nonce": NONCE,
    }
    fields.update(changes)
    return Mandate(**fields)


def chain_of(*mandates: Mandate) -> MandateChain:
    """Sign each mandate with its issuer's key (one of the test keys) and chain them."""
    keys = {key.address: key for key in (PRINCIPAL, AGENT, SUB_AGENT, SUB_SUB_AGENT, OUTSIDER)}
    return MandateChain(tuple(SignedMandate.sign(m, keys[m.issuer]) for m in mandates))


def three_deep() -> tuple[Mandate, Mandate, Mandate]:
    """Root (PRINCIPAL -> AGENT), child (-> SUB_AGENT), grandchild (-> SUB_SUB_AGENT)."""
    root = root_mandate()
    child = root.delegate(SUB_AGENT.address, limits=(usdc_limit(500_000, 50_000),))
    grandchild = child.delegate(
        SUB_SUB_AGENT.address, limits=(usdc_limit(200_000, 20_000),), payees=(PAYEE,)
    )
    return root, child, grandchild


def fields_of(mandate: Mandate) -> dict[str, Any]:
    """The constructor arguments of `mandate` (to rebuild it with changes)."""
    return {f.name: getattr(mandate, f.name) for f in dataclasses.fields(mandate) if f.init}
