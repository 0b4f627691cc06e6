"""`Token`: EIP-3009 on the token: authorizations signed on paywire's fast EIP-712 path,
``transferWithAuthorization`` simulated for verify (ok, or the revert reason and its x402
error code) and settled with a receipt check that the Transfer event moved exactly the
authorized value from the payer to the payee, and the events that report them."""

from __future__ import annotations

import time
from dataclasses import dataclass

from eth_abi.abi import encode as abi_encode

from paywire.chain.base._values import Log, Receipt
from paywire.chain.eip3009 import Authorization, AuthorizationKind, new_nonce, split_signature
from paywire.chain.errors import (
    InvalidAuthorization,
    InvalidChainInput,
    TransactionReverted,
    TransferMismatch,
)
from paywire.chain.token._contract import (
    _AUTH_TYPES,
    _SELECTORS,
    AUTHORIZATION_USED_TOPIC,
    GAS_BOUNDS,
    TRANSFER_TOPIC,
    TransferLog,
    _addr,
    _nonce,
    _topic,
    transfer_log,
)
from paywire.chain.token._handle import TokenHandle
from paywire.crypto import PrivateKey

DEFAULT_VALIDITY_S = 300
"""How long a fresh authorization stays valid (x402's default ``maxTimeoutSeconds``)."""

MAX_VALIDITY_S = 366 * 24 * 3600
"""An authorization valid longer than a year is a standing permission, not a payment."""

# Contract revert reasons (ours, and USDC's wording, which ours follows) -> x402 error codes.
_REVERT_CODES: tuple[tuple[str, str], ...] = (
    ("authorization is expired", "invalid_exact_evm_payload_authorization_valid_before"),
    ("authorization is not yet valid", "invalid_exact_evm_payload_authorization_valid_after"),
    ("authorization is used", "invalid_exact_evm_nonce_already_used"),
    ("transfer amount exceeds balance", "invalid_exact_evm_insufficient_balance"),
    ("invalid signature", "invalid_exact_evm_payload_signature"),
    ("caller must be the payee", "invalid_exact_evm_payload_recipient_mismatch"),
)
SIMULATION_FAILED = "invalid_exact_evm_transaction_simulation_failed"
"""x402's reason for a simulation that failed for a reason it does not name."""


def revert_code(reason: str) -> str:
    """The x402 error code for a token revert reason (`SIMULATION_FAILED` if unknown)."""
    lowered = reason.lower()
    for fragment, code in _REVERT_CODES:
        if fragment in lowered:
            return code
    return SIMULATION_FAILED


@dataclass(frozen=True, slots=True)
class Simulation:
    """What a ``transferWithAuthorization`` would do now: `ok`, or why not (`reason` as the
    contract said it, `code` as x402 names it)."""

    ok: bool
    reason: str = ""
    code: str = ""


class Token(TokenHandle):
    """The EIP-3009 token at `address` on `chain`.

    Its name, symbol, version and decimals are read once, here; the EIP-712 `domain`
    follows from them, the chain id and the address.
    """

    # ----- EIP-3009: signing (no chain call) -----------------------------------------------

    def authorization(
        self,
        from_: str,
        to: str,
        value: int,
        *,
        valid_after: int = 0,
        valid_before: int | None = None,
        valid_for_s: int = DEFAULT_VALIDITY_S,
        nonce: bytes | None = None,
    ) -> Authorization:
        """An authorization with a fresh random nonce, valid until now + `valid_for_s`
        (wall clock) unless `valid_before` is given."""
        if valid_before is None:
            if not isinstance(valid_for_s, int) or not 1 <= valid_for_s <= MAX_VALIDITY_S:
                raise InvalidChainInput(f"valid_for_s must be 1..{MAX_VALIDITY_S} seconds")
            valid_before = int(time.time()) + valid_for_s
        return Authorization(
            from_=from_,
            to=to,
            value=value,
            valid_after=valid_after,
            valid_before=valid_before,
            nonce=new_nonce() if nonce is None else nonce,
        )

    def sign(
        self,
        key: PrivateKey,
        authorization: Authorization,
        kind: AuthorizationKind = AuthorizationKind.TRANSFER,
    ) -> bytes:
        """`key`'s 65-byte signature of the authorization for this token (fast path)."""
        if key.address != authorization.from_:
            raise InvalidAuthorization(
                f"the key of {key.address} cannot sign for {authorization.from_}"
            )
        return self._messages[kind].sign(authorization.message(), key)

    def sign_transfer(self, key: PrivateKey, authorization: Authorization) -> bytes:
        """Sign a ``TransferWithAuthorization`` (what x402 ``exact`` carries)."""
        return self.sign(key, authorization, AuthorizationKind.TRANSFER)

    def sign_receive(self, key: PrivateKey, authorization: Authorization) -> bytes:
        """Sign a ``ReceiveWithAuthorization`` (a deposit only the payee can submit)."""
        return self.sign(key, authorization, AuthorizationKind.RECEIVE)

    def sign_cancel(self, key: PrivateKey, nonce: bytes) -> bytes:
        """Sign a ``CancelAuthorization`` of `key`'s unused `nonce`."""
        return self._cancel.sign({"authorizer": key.address, "nonce": _nonce(nonce)}, key)

    def recover(
        self,
        authorization: Authorization,
        signature: bytes | str,
        kind: AuthorizationKind = AuthorizationKind.TRANSFER,
    ) -> str:
        """Who signed the authorization (checksummed)."""
        return self._messages[kind].recover(authorization.message(), signature)

    def typed_data(
        self,
        authorization: Authorization,
        kind: AuthorizationKind = AuthorizationKind.TRANSFER,
    ) -> dict[str, object]:
        """The full EIP-712 typed data (``eth_signTypedData_v4`` / eth_account form)."""
        message = authorization.message()
        message["nonce"] = "0x" + authorization.nonce.hex()
        return self._messages[kind].full_message(message)

    # ----- EIP-3009: on chain --------------------------------------------------------------

    def simulate_transfer_with_authorization(
        self,
        authorization: Authorization,
        signature: bytes | str,
        *,
        sender: str | None = None,
    ) -> Simulation:
        """Run ``transferWithAuthorization`` as an ``eth_call`` (from `sender`, default the
        chain's signer if it has one): ok, or the revert reason and its x402 code.

        Answers on what the chain's latest block says: a valid authorization may still lose
        a race to another submission of the same nonce.
        """
        data = self._authorization_call("transferWithAuthorization", authorization, signature)
        try:
            self.chain.call(self.address, data, sender=sender)
        except TransactionReverted as error:
            return Simulation(False, error.reason, revert_code(error.reason))
        return Simulation(True)

    def send_transfer_with_authorization(
        self,
        authorization: Authorization,
        signature: bytes | str,
        *,
        key: PrivateKey | None = None,
    ) -> str:
        """Broadcast ``transferWithAuthorization`` paid by `key` (default: the chain's
        signer); the tx hash, without waiting. `TransactionReverted` if it would revert."""
        data = self._authorization_call("transferWithAuthorization", authorization, signature)
        return self.chain.send(
            self._signer(key),
            self.address,
            data,
            gas_bound=GAS_BOUNDS["transferWithAuthorization"],
        )

    def confirm_transfer(
        self,
        tx_hash: str,
        authorization: Authorization,
        *,
        confirmations: int | None = None,
        timeout_s: float | None = None,
    ) -> Receipt:
        """Wait for `tx_hash` and check that it succeeded and that its receipt carries the
        Transfer of exactly ``value`` from ``from`` to ``to`` by this token."""
        receipt = self.chain.wait(tx_hash, confirmations=confirmations, timeout_s=timeout_s)
        if not receipt.ok:
            # A receipt carries no reason. The usual one: another submission of the same
            # authorization was mined first (both passed their estimate before either landed).
            reason = (
                "authorization is used or canceled"
                if self.authorization_state(authorization.from_, authorization.nonce)
                else ""
            )
            raise TransactionReverted(
                f"transaction {tx_hash} reverted on chain" + (f": {reason}" if reason else ""),
                reason=reason,
                tx_hash=tx_hash,
            )
        self.check_transfer(receipt, authorization.from_, authorization.to, authorization.value)
        return receipt

    def transfer_with_authorization(
        self,
        authorization: Authorization,
        signature: bytes | str,
        *,
        key: PrivateKey | None = None,
        confirmations: int | None = None,
    ) -> Receipt:
        """Settle an x402 ``exact`` payment: send, wait, check the Transfer event."""
        tx_hash = self.send_transfer_with_authorization(authorization, signature, key=key)
        return self.confirm_transfer(tx_hash, authorization, confirmations=confirmations)

    def receive_with_authorization(
        self,
        authorization: Authorization,
        signature: bytes | str,
        *,
        key: PrivateKey,
        confirmations: int | None = None,
    ) -> Receipt:
        """Submit a ``ReceiveWithAuthorization``: `key` must be the payee (``to``)."""
        if key.address != authorization.to:
            raise InvalidAuthorization(
                f"only the payee {authorization.to} may submit receiveWithAuthorization"
            )
        data = self._authorization_call("receiveWithAuthorization", authorization, signature)
        tx_hash = self.chain.send(
            key, self.address, data, gas_bound=GAS_BOUNDS["receiveWithAuthorization"]
        )
        return self.confirm_transfer(tx_hash, authorization, confirmations=confirmations)

    def cancel_authorization(
        self,
        authorizer: str,
        nonce: bytes,
        signature: bytes | str,
        *,
        key: PrivateKey | None = None,
    ) -> Receipt:
        """Burn `authorizer`'s unused `nonce` (signed by the authorizer; any key pays)."""
        v, r, s = split_signature(signature)
        return self._transact(
            self._signer(key),
            "cancelAuthorization",
            ["address", "bytes32", "uint8", "bytes32", "bytes32"],
            [_addr(authorizer), _nonce(nonce), v, r, s],
        )

    def check_transfer(self, receipt: Receipt, from_: str, to: str, value: int) -> Log:
        """The log in `receipt` of this token's Transfer of `value` from `from_` to `to`;
        `TransferMismatch` if there is none."""
        want = (_topic(from_), _topic(to))
        for log in receipt.logs:
            if (
                log.address == self.address
                and len(log.topics) == 3
                and log.topics[0] == TRANSFER_TOPIC
                and (log.topics[1], log.topics[2]) == want
                and len(log.data) == 32
                and int.from_bytes(log.data, "big") == value
            ):
                return log
        raise TransferMismatch(
            f"transaction {receipt.tx_hash} has no Transfer of {value} from {from_} to {to}"
        )

    def transfers(
        self,
        *,
        from_block: int,
        to_block: int,
        from_: str | None = None,
        to: str | None = None,
    ) -> list[TransferLog]:
        """Transfer events in [from_block, to_block], optionally by sender or recipient."""
        topics = [
            TRANSFER_TOPIC,
            None if from_ is None else _topic(from_),
            None if to is None else _topic(to),
        ]
        found = []
        for log in self.chain.logs(
            address=self.address, topics=topics, from_block=from_block, to_block=to_block
        ):
            decoded = transfer_log(log)
            if decoded is not None:
                found.append(decoded)
        return found

    def authorization_used_log(
        self, authorizer: str, nonce: bytes, *, from_block: int = 0
    ) -> Log | None:
        """The AuthorizationUsed event of (`authorizer`, `nonce`), if it was used."""
        topics = [AUTHORIZATION_USED_TOPIC, _topic(authorizer), _nonce(nonce)]
        logs = self.chain.logs(
            address=self.address,
            topics=topics,
            from_block=from_block,
            to_block=self.chain.block_number(),
        )
        return logs[0] if logs else None

    # ----- plumbing ------------------------------------------------------------------------

    def _signer(self, key: PrivateKey | None) -> PrivateKey:
        return self.chain.default_signer() if key is None else key

    def _authorization_call(
        self, function: str, authorization: Authorization, signature: bytes | str
    ) -> bytes:
        if not isinstance(authorization, Authorization):
            raise InvalidAuthorization("expected an Authorization (see Token.authorization)")
        v, r, s = split_signature(signature)
        a = authorization
        return _SELECTORS[function] + abi_encode(
            _AUTH_TYPES,
            [a.from_, a.to, a.value, a.valid_after, a.valid_before, a.nonce, v, r, s],
        )
