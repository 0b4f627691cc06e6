"""The operator's mandate endpoints over real loopback HTTP: `POST /mandates/revoke` closes
a mandate's ledger limits (so the facilitator refuses payments under it at once), and
`/mandates/status` reports spent and remaining per limit. Bad requests are 400s with a
code, never 500s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from payment_helpers import fund
from starlette.types import ASGIApp

from paywire.client.direct import direct_payment
from paywire.crypto.keys import PrivateKey
from paywire.ledger import Ledger
from paywire.mandate import (
    AssetLimit,
    Mandate,
    MandateChain,
    Revocation,
    SignedMandate,
    SignedRevocation,
    Window,
)
from paywire.money import USDC
from paywire.protocol import Facilitator
from paywire.service import operator_app

PRICE = 1_000


def chain_for(
    ledger: Ledger, principal: PrivateKey, agent: PrivateKey, sub: PrivateKey | None = None
) -> MandateChain:
    now = int(time.time())
    limits = (
        AssetLimit(ledger.network, "USDC", 10_000, 2_000, (Window(3600, 5_000),)),
        AssetLimit("eip155:*", "0x036CbD53842c5426634e7929541eC2318f3dCF7e", 10**6, 10**6),
    )
    root = Mandate(principal.address, agent.address, limits, now - 60, now + 3600)
    chain = MandateChain((SignedMandate.sign(root, principal),))
    if sub is not None:
        child = root.delegate(
            sub.address, limits=(AssetLimit(ledger.network, "USDC", 2_000, 2_000),)
        )
        chain = chain.extend(SignedMandate.sign(child, agent))
    return chain


def pay(facilitator: Facilitator, ledger: Ledger, payer: PrivateKey, chain: MandateChain) -> Any:
    payment = direct_payment(
        payer,
        ledger.network,
        PrivateKey.generate().address,
        USDC.atomic(PRICE),
        mandate=chain,
        check_mandate=False,
        resource="http://shop.example/search",
    )
    return asyncio.run(facilitator.settle(*payment))


def revocation(mandate_id: str, signer: PrivateKey, revoker: str | None = None) -> str:
    document = Revocation(mandate_id, revoker or signer.address, int(time.time()))
    if revoker is None:
        return SignedRevocation.sign(document, signer).to_base64()
    return SignedRevocation(document, signer.sign_digest(document.digest)).to_base64()


@pytest.fixture
def base(serve: Callable[[ASGIApp], str], facilitator: Facilitator, ledger: Ledger) -> str:
    return serve(operator_app(facilitator, ledger))


def by_limit(report: dict[str, Any]) -> dict[tuple[int, str], dict[str, Any]]:
    """The USDC rows of a status report, by depth and "total" / "w<seconds>"."""
    return {
        (row["depth"], row["limitId"].rsplit(":", 1)[-1]): row
        for row in report["rows"]
        if row["ledger"]
    }


def test_status_reports_spent_and_remaining_per_limit(
    base: str, facilitator: Facilitator, ledger: Ledger
) -> None:
    principal, agent, sub = (PrivateKey.generate() for _ in range(3))
    fund(ledger, agent, 100_000)
    fund(ledger, sub, 100_000)
    chain = chain_for(ledger, principal, agent, sub)
    parent = MandateChain(chain.mandates[:1])
    fresh = httpx.post(f"{base}/mandates/status", json={"chain": chain.to_base64()}).json()
    assert {row["opened"] for row in fresh["rows"]} == {False}
    assert by_limit(fresh)[0, "total"]["remaining"] == "10000"

    for _ in range(2):
        assert pay(facilitator, ledger, agent, parent).success
    assert pay(facilitator, ledger, sub, chain).success

    report = httpx.post(f"{base}/mandates/status", json={"chain": chain.to_base64()}).json()
    assert report["mandates"] == list(chain.ids) and report["agent"] == sub.address
    rows = by_limit(report)
    assert rows[0, "total"] | {"limitId": ""} == {
        "mandate": chain.ids[0],
        "depth": 0,
        "agent": agent.address,
        "network": ledger.network,
        "asset": "USDC",
        "limit": "total",
        "windowSeconds": None,
        "limitId": "",
        "cap": "10000",
        "spent": "3000",
        "remaining": "7000",
        "perPayment": "2000",
        "closed": False,
        "opened": True,
        "ledger": True,
    }
    assert (rows[0, "w3600"]["spent"], rows[0, "w3600"]["remaining"]) == ("3000", "2000")
    assert rows[0, "w3600"]["windowSeconds"] == 3600
    assert (rows[1, "total"]["spent"], rows[1, "total"]["remaining"]) == ("1000", "1000")
    token = [row for row in report["rows"] if not row["ledger"]]
    assert len(token) == 1 and token[0]["spent"] == "0" and not token[0]["opened"]
    by_get = httpx.get(f"{base}/mandates/status", params={"chain": chain.to_base64()})
    assert by_get.status_code == 200 and by_get.json() == report


def test_revoke_closes_the_limits_and_the_facilitator_refuses_at_once(
    base: str, facilitator: Facilitator, ledger: Ledger
) -> None:
    principal, agent, sub, stranger = (PrivateKey.generate() for _ in range(4))
    fund(ledger, agent, 100_000)
    fund(ledger, sub, 100_000)
    chain = chain_for(ledger, principal, agent, sub)
    parent = MandateChain(chain.mandates[:1])
    assert pay(facilitator, ledger, sub, chain).success
    child_id = chain.ids[1]

    def revoke(body: dict[str, object]) -> httpx.Response:
        return httpx.post(f"{base}/mandates/revoke", json=body)

    # A stranger, and the sub-agent itself on its parent's mandate, may not revoke.
    for mandate_id, key in ((child_id, stranger), (chain.ids[0], sub)):
        refused = revoke({"chain": chain.to_base64(), "revocation": revocation(mandate_id, key)})
        assert refused.status_code == 400
        assert refused.json()["error"] == "mandate_revoker_not_allowed"
        assert "may not revoke" in refused.json()["message"]
    forged = revoke(
        {"chain": chain.to_base64(), "revocation": revocation(child_id, stranger, agent.address)}
    )
    assert forged.status_code == 400 and forged.json()["error"] == "mandate_signature_invalid"
    other = chain_for(ledger, principal, agent)
    elsewhere = revoke(
        {"chain": chain.to_base64(), "revocation": revocation(other.ids[0], principal)}
    )
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "mandate_not_in_chain"
    assert pay(facilitator, ledger, sub, chain).success  # nothing was closed

    done = revoke({"chain": chain.to_base64(), "revocation": revocation(child_id, agent)})
    assert done.status_code == 200
    assert done.json() == {
        "mandate": child_id,
        "closed": [f"mandate:{child_id[2:]}:0:total"],
    }
    assert pay(facilitator, ledger, sub, chain).error_reason == "mandate_revoked"
    assert pay(facilitator, ledger, agent, parent).success

    again = revoke(
        {"chain": parent.to_base64(), "revocation": revocation(parent.ids[0], principal)}
    )
    assert again.status_code == 200 and len(again.json()["closed"]) == 2
    assert pay(facilitator, ledger, agent, parent).error_reason == "mandate_revoked"
    rows = by_limit(httpx.post(f"{base}/mandates/status", json={"chain": chain.to_base64()}).json())
    assert rows[0, "total"]["closed"] and rows[0, "total"]["remaining"] == "0"
    assert rows[1, "total"]["closed"] and rows[1, "total"]["spent"] == "2000"
    assert ledger.log.verify().ok


def test_bad_requests_are_400s_never_500s(base: str, ledger: Ledger) -> None:
    principal, agent = PrivateKey.generate(), PrivateKey.generate()
    chain = chain_for(ledger, principal, agent)
    good = revocation(chain.ids[0], principal)
    tampered = chain.to_dict()
    tampered["chain"][0]["purpose"] = "more"  # type: ignore[index]
    bad_chain = MandateChain.from_dict(tampered).to_base64()
    bodies: list[bytes | dict[str, object]] = [
        b"not json",
        b"[]",
        b"\xff\xfe",
        b"{" * 100,
        b'{"chain": "' + b"A" * 70_000 + b'"}',
        {},
        {"chain": 5, "revocation": good},
        {"chain": "", "revocation": good},
        {"chain": "eyJub3QgYSBjaGFpbg", "revocation": good},
        {"chain": "!!!", "revocation": good},
        {"chain": chain.to_base64()},
        {"chain": chain.to_base64(), "revocation": ["x"]},
        {"chain": chain.to_base64(), "revocation": "eyJ2IjoxfQ"},
        {"chain": bad_chain, "revocation": good},
    ]
    with httpx.Client() as client:
        for path in ("/mandates/revoke", "/mandates/status"):
            for body in bodies:
                if isinstance(body, bytes):
                    response = client.post(f"{base}{path}", content=body)
                else:
                    response = client.post(f"{base}{path}", json=body)
                if (
                    path.endswith("status")
                    and isinstance(body, dict)
                    and body.get("chain") == (chain.to_base64())
                ):
                    assert response.status_code == 200  # status needs only the chain
                    continue
                assert response.status_code == 400, (path, body, response.text)
                answer = response.json()
                assert set(answer) == {"error", "message"} and answer["error"], answer
        too_long = client.get(f"{base}/mandates/status", params={"chain": "A" * 20_000})
        assert too_long.status_code == 400
        assert client.get(f"{base}/mandates/status").status_code == 400
        assert client.get(f"{base}/mandates/revoke").status_code == 405
        assert client.get(f"{base}/supported").status_code == 200  # the facilitator is still there
