"""Delegation chains: verified from the principal down, each child within its parent,
valid in time (with a bounded skew), not revoked; and revocation documents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mandate_helpers import (
    AGENT,
    BASE,
    END,
    LEDGER,
    ORIGIN,
    OTHER_PAYEE,
    OUTSIDER,
    PAYEE,
    PRINCIPAL,
    START,
    SUB_AGENT,
    SUB_SUB_AGENT,
    TOKEN,
    chain_of,
    fields_of,
    root_mandate,
    three_deep,
    usdc_limit,
)

from paywire.errors import InvalidInput
from paywire.mandate import (
    CLOCK_SKEW_S,
    MAX_CHAIN_DEPTH,
    MAX_CLOCK_SKEW_S,
    AssetLimit,
    InvalidMandate,
    Mandate,
    MandateChain,
    MandateChainBroken,
    MandateExpired,
    MandateNotYetValid,
    MandateRevoked,
    MandateSignatureInvalid,
    MandateWiderThanParent,
    MandateWrongPrincipal,
    Revocation,
    SignedMandate,
    SignedRevocation,
    Window,
    check_delegation,
    verify_revocation,
    window_bound,
)

NOW = START + 1000


def test_a_three_deep_chain_verifies() -> None:
    chain = chain_of(*three_deep())
    chain.verify(NOW, principal=PRINCIPAL.address)
    chain.verify(NOW, set(), principal=PRINCIPAL.address.lower())
    assert chain.principal == PRINCIPAL.address and chain.agent == SUB_SUB_AGENT.address
    assert len(chain) == 3 and chain.ids[0] == chain.root.id


def test_the_root_must_be_issued_by_the_expected_principal() -> None:
    chain = chain_of(*three_deep())
    with pytest.raises(MandateWrongPrincipal) as caught:
        chain.verify(NOW, principal=OUTSIDER.address)
    assert caught.value.mandate_id == chain.root.id and caught.value.field == "issuer"


def test_a_chain_with_a_gap_is_refused() -> None:
    root, _child, grandchild = three_deep()
    with pytest.raises(MandateChainBroken) as caught:
        chain_of(root, grandchild).verify(NOW, principal=PRINCIPAL.address)
    assert caught.value.mandate_id == grandchild.id and caught.value.field == "parent"
    assert "missing" in str(caught.value)


def test_a_chain_must_start_at_its_root() -> None:
    _root, child, grandchild = three_deep()
    with pytest.raises(MandateChainBroken, match="from its root"):
        chain_of(child, grandchild).verify(NOW, principal=AGENT.address)


def test_a_child_must_be_issued_by_its_parents_agent() -> None:
    root = root_mandate()
    stolen = root.delegate(SUB_AGENT.address)
    stolen = Mandate(**{**fields_of(stolen), "issuer": OUTSIDER.address})
    with pytest.raises(MandateChainBroken) as caught:
        chain_of(root, stolen).verify(NOW, principal=PRINCIPAL.address)
    assert caught.value.field == "issuer" and AGENT.address in str(caught.value)


def test_a_bad_signature_anywhere_names_that_mandate() -> None:
    chain = chain_of(*three_deep())
    middle = chain.mandates[1]
    forged = SignedMandate(middle.mandate, OUTSIDER.sign_digest(middle.mandate.digest))
    broken = MandateChain((chain.mandates[0], forged, chain.mandates[2]))
    with pytest.raises(MandateSignatureInvalid) as caught:
        broken.verify(NOW, principal=PRINCIPAL.address)
    assert caught.value.mandate_id == middle.id


# --- narrower children ----------------------------------------------------------------------

WIDER: dict[str, tuple[Callable[[Mandate], Mandate], str]] = {
    "starts earlier": (
        lambda p: p.delegate(SUB_AGENT.address, valid_after=START - 1),
        "validAfter",
    ),
    "ends later": (lambda p: p.delegate(SUB_AGENT.address, valid_before=END + 1), "validBefore"),
    "any payee": (lambda p: p.delegate(SUB_AGENT.address, payees=()), "payees"),
    "other payee": (
        lambda p: p.delegate(SUB_AGENT.address, payees=(PAYEE, OUTSIDER.address)),
        "payees",
    ),
    "any origin": (lambda p: p.delegate(SUB_AGENT.address, origins=()), "origins"),
    "other origin": (
        lambda p: p.delegate(SUB_AGENT.address, origins=("https://evil.example.com",)),
        "origins",
    ),
    "any network": (lambda p: p.delegate(SUB_AGENT.address, networks=()), "networks"),
    "other network": (
        lambda p: p.delegate(SUB_AGENT.address, networks=(LEDGER, "eip155:1")),
        "networks",
    ),
    "network pattern": (
        lambda p: p.delegate(SUB_AGENT.address, networks=(LEDGER, "eip155:*")),
        "networks",
    ),
    "other asset": (
        lambda p: p.delegate(SUB_AGENT.address, limits=(usdc_limit(asset="EURC"),)),
        "limits[0]",
    ),
    "wider limit network": (
        lambda p: p.delegate(SUB_AGENT.address, limits=(usdc_limit(network="paywire:*"),)),
        "limits[0]",
    ),
    "higher total": (
        lambda p: p.delegate(SUB_AGENT.address, limits=(usdc_limit(total=1_000_001),)),
        "limits[0].total",
    ),
    "higher per payment": (
        lambda p: p.delegate(SUB_AGENT.address, limits=(usdc_limit(per_payment=100_001),)),
        "limits[0].perPayment",
    ),
    "higher window": (
        lambda p: p.delegate(
            SUB_AGENT.address, limits=(usdc_limit(windows=((3600, 300_001), (86400, 600_000))),)
        ),
        "limits[0].windows",
    ),
    "missing window": (
        lambda p: p.delegate(SUB_AGENT.address, limits=(usdc_limit(windows=((86400, 600_000),)),)),
        "limits[0].windows",
    ),
    "shorter window too loose": (
        lambda p: p.delegate(
            SUB_AGENT.address, limits=(usdc_limit(windows=((60, 10_000), (86400, 600_000))),)
        ),
        "limits[0].windows",
    ),
}


@pytest.mark.parametrize("case", sorted(WIDER))
def test_a_child_wider_than_its_parent_in_any_one_field_is_refused(case: str) -> None:
    build, field = WIDER[case]
    parent = root_mandate()
    child = build(parent)
    with pytest.raises(MandateWiderThanParent) as caught:
        check_delegation(parent, child)
    assert caught.value.field == field and caught.value.mandate_id == child.id
    with pytest.raises(MandateWiderThanParent):
        chain_of(parent, child).verify(NOW, principal=PRINCIPAL.address)


def test_the_wider_error_gives_both_values() -> None:
    parent = root_mandate()
    child = parent.delegate(SUB_AGENT.address, limits=(usdc_limit(total=1_000_001),))
    with pytest.raises(MandateWiderThanParent) as caught:
        check_delegation(parent, child)
    assert (caught.value.child_value, caught.value.parent_value) == (1_000_001, 1_000_000)
    assert "by 1" in str(caught.value)


NARROWER: dict[str, Callable[[Mandate], Mandate]] = {
    "inherits everything": lambda p: p.delegate(SUB_AGENT.address),
    "fewer of everything": lambda p: p.delegate(
        SUB_AGENT.address,
        limits=(usdc_limit(10, 5, ((1, 1),)),),
        payees=(OTHER_PAYEE,),
        origins=(ORIGIN,),
        networks=(LEDGER,),
        valid_after=START + 1,
        valid_before=END - 1,
    ),
    "exact network under a pattern": lambda p: p.delegate(
        SUB_AGENT.address,
        networks=("eip155:8453",),
        limits=(AssetLimit("eip155:8453", TOKEN, 100, 10),),
    ),
    "total below the parent's window": lambda p: p.delegate(
        SUB_AGENT.address, limits=(usdc_limit(300_000, 100_000, ()),)
    ),
    "shorter windows whose multiple fits": lambda p: p.delegate(
        SUB_AGENT.address, limits=(usdc_limit(windows=((1800, 150_000), (43200, 300_000))),)
    ),
    "longer window with a lower limit": lambda p: p.delegate(
        SUB_AGENT.address, limits=(usdc_limit(windows=((7200, 300_000), (86400, 600_000))),)
    ),
}


@pytest.mark.parametrize("case", sorted(NARROWER))
def test_narrower_children_are_accepted(case: str) -> None:
    parent = root_mandate(networks=(LEDGER, "eip155:*"), limits=_pattern_limits())
    child = NARROWER[case](parent)
    check_delegation(parent, child)
    chain_of(parent, child).verify(NOW, principal=PRINCIPAL.address)


def _pattern_limits() -> tuple[AssetLimit, ...]:
    return (usdc_limit(), AssetLimit("eip155:*", TOKEN, 100, 10))


def test_window_bound() -> None:
    limit = usdc_limit(1000, 100, ((60, 50), (3600, 400)))
    assert window_bound(limit, 60)[0] == 50
    assert window_bound(limit, 61)[0] == 100  # two minutes' windows cover 61 seconds
    assert window_bound(limit, 600)[0] == 400  # 10 x 50 = 500 > the hour's 400
    assert window_bound(limit, 3601)[0] == 800
    assert window_bound(limit, 10**6)[0] == 1000  # the total
    assert window_bound(usdc_limit(1000, 100, ()), 1)[0] == 1000


# --- time -------------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", [0, CLOCK_SKEW_S, MAX_CLOCK_SKEW_S])
def test_validity_boundaries_with_skew(skew: int) -> None:
    chain = chain_of(root_mandate())
    principal = PRINCIPAL.address
    chain.verify(START - skew, principal=principal, skew_s=skew)
    chain.verify(END + skew - 1, principal=principal, skew_s=skew)
    with pytest.raises(MandateNotYetValid) as early:
        chain.verify(START - skew - 1, principal=principal, skew_s=skew)
    assert early.value.overrun == 1 and early.value.limit == "validAfter"
    with pytest.raises(MandateExpired) as late:
        chain.verify(END + skew, principal=principal, skew_s=skew)
    assert late.value.overrun == 1 and late.value.allowed == END
    assert late.value.mandate_id == chain.root.id


def test_default_skew_and_its_bound() -> None:
    chain = chain_of(root_mandate())
    chain.verify(START - CLOCK_SKEW_S, principal=PRINCIPAL.address)
    for bad in (-1, MAX_CLOCK_SKEW_S + 1):
        with pytest.raises(InvalidInput):
            chain.verify(NOW, principal=PRINCIPAL.address, skew_s=bad)


def test_an_expired_ancestor_expires_the_chain() -> None:
    root = root_mandate(valid_before=START + 100)
    child = root.delegate(SUB_AGENT.address)
    with pytest.raises(MandateExpired) as caught:
        chain_of(root, child).verify(START + 100 + CLOCK_SKEW_S, principal=PRINCIPAL.address)
    assert caught.value.mandate_id == root.id


# --- revocation -------------------------------------------------------------------------------


def test_revoking_any_mandate_of_the_chain_revokes_the_chain() -> None:
    chain = chain_of(*three_deep())
    for depth, mandate_id in enumerate(chain.ids):
        with pytest.raises(MandateRevoked) as caught:
            chain.verify(NOW, {mandate_id}, principal=PRINCIPAL.address)
        assert caught.value.mandate_id == mandate_id
        assert ("below it" in str(caught.value)) == (depth < 2)
        with pytest.raises(MandateRevoked):
            chain.verify(NOW, {mandate_id}.__contains__, principal=PRINCIPAL.address)
    chain.verify(NOW, {"0x" + "00" * 32}, principal=PRINCIPAL.address)


def test_revoked_must_not_be_one_string() -> None:
    chain = chain_of(root_mandate())
    with pytest.raises(InvalidInput):
        chain.verify(NOW, chain.ids[0], principal=PRINCIPAL.address)


def _revoke(mandate: Mandate, key: Any) -> SignedRevocation:
    return SignedRevocation.sign(Revocation(mandate.id, key.address, NOW), key)


def test_who_may_revoke_what() -> None:
    root, child, grandchild = three_deep()
    chain = chain_of(root, child, grandchild)
    expected = {
        # revoker: the mandates (by depth) it may revoke
        PRINCIPAL: {0, 1, 2},
        AGENT: {1, 2},  # issued the child, so it may revoke it and what is below
        SUB_AGENT: {2},
        SUB_SUB_AGENT: set(),  # issued nothing
        OUTSIDER: set(),
    }
    for key, allowed in expected.items():
        for depth, mandate in enumerate((root, child, grandchild)):
            assert verify_revocation(_revoke(mandate, key), chain) == (depth in allowed), (
                key,
                depth,
            )
    assert verify_revocation(_revoke(child, PRINCIPAL), [root, child])
    assert not verify_revocation(_revoke(grandchild, PRINCIPAL), chain_of(root, child))


def test_a_revocation_with_a_bad_signature_is_not_valid() -> None:
    root = root_mandate()
    revocation = Revocation(root.id, PRINCIPAL.address, NOW)
    forged = SignedRevocation(revocation, OUTSIDER.sign_digest(revocation.digest))
    assert not verify_revocation(forged, chain_of(root))
    with pytest.raises(MandateSignatureInvalid):
        forged.verify()
    with pytest.raises(InvalidMandate):
        SignedRevocation.sign(revocation, OUTSIDER)


def test_revocation_round_trips_and_tampering() -> None:
    root = root_mandate()
    signed = _revoke(root, PRINCIPAL)
    assert SignedRevocation.from_json(signed.to_json()) == signed
    assert SignedRevocation.from_base64(signed.to_base64()) == signed
    document = signed.to_dict()
    document["at"] = NOW + 1
    tampered = SignedRevocation.from_dict(document)
    with pytest.raises(MandateSignatureInvalid):
        tampered.verify()
    assert not verify_revocation(tampered, chain_of(root))
    bad_documents: list[object] = [
        {**signed.to_dict(), "x": 1},
        {**signed.to_dict(), "mandateId": "0x12"},
        [],
    ]
    for bad in bad_documents:
        with pytest.raises(InvalidMandate):
            SignedRevocation.from_dict(bad)
    with pytest.raises(InvalidMandate):
        SignedRevocation.from_json("x" * 2000)


def test_revocation_and_mandate_signatures_are_separated() -> None:
    root = root_mandate()
    revocation = Revocation(root.id, PRINCIPAL.address, NOW)
    assert revocation.digest != root.digest


# --- the chain's carried form -----------------------------------------------------------------


def test_chain_round_trips() -> None:
    chain = chain_of(*three_deep())
    assert MandateChain.from_json(chain.to_json()) == chain
    assert MandateChain.from_base64(chain.to_base64()) == chain
    assert chain.to_json().startswith('{"v":1,"chain":[{"v":1,')


def test_malformed_chains_are_refused_naming_the_link() -> None:
    chain = chain_of(*three_deep())
    document = chain.to_dict()
    document["chain"][1]["limits"][0]["total"] = "-5"  # type: ignore[index]
    with pytest.raises(InvalidMandate) as caught:
        MandateChain.from_dict(document)
    assert caught.value.field == "chain[1].limits[0].total"
    for bad in ({"v": 1, "chain": []}, {"v": 1}, {"v": 2, "chain": []}, {"v": 1, "chain": {}}):
        with pytest.raises(InvalidMandate):
            MandateChain.from_dict(bad)
    too_deep = [chain.mandates[0].to_dict()] * (MAX_CHAIN_DEPTH + 1)
    with pytest.raises(InvalidMandate):
        MandateChain.from_dict({"v": 1, "chain": too_deep})
    with pytest.raises(InvalidMandate):
        MandateChain(())


def test_extend_appends_a_delegation() -> None:
    root, child, _ = three_deep()
    chain = chain_of(root).extend(SignedMandate.sign(child, AGENT))
    chain.verify(NOW, principal=PRINCIPAL.address)
    assert chain.leaf == child


def test_delegate_inherits_and_links() -> None:
    root = root_mandate()
    child = root.delegate(SUB_AGENT.address, purpose="sub-task")
    assert child.issuer == AGENT.address and child.parent_id == root.id
    assert child.limits == root.limits and child.payees == root.payees
    assert child.nonce != root.nonce and child.purpose == "sub-task"
    assert not child.is_root and root.is_root and root.parent_id is None
    assert root.limit_for(BASE, TOKEN) is not None and root.limit_for(BASE, "USDC") is None
    assert Window(60, 1) in usdc_limit(windows=((60, 1),)).windows
