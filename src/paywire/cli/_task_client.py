"""What `paywire task` reads from the command line and sends to the operator: amounts,
durations, shares, fees, files, and the signed requests (`paywire.tasks.requests`).

Every problem with what was typed is an `InvalidInput` naming the flag; the operator's
refusals are `OperatorError`s carrying its message.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from paywire.cli import _mandate_input as read
from paywire.errors import InvalidInput, PaywireError

if TYPE_CHECKING:
    from paywire.crypto.keys import PrivateKey
    from paywire.money import Amount

MAX_CHECK_FILE_BYTES = 16 * 1024
"""An acceptance check's JSON file (the task keeps at most 1.5 KB of it)."""

MAX_SHARE_FLAGS = 64
"""--share flags per command (a task allows at most 32 agents)."""

MAX_SHARE_PARTS = 10**12

RESULT_CHUNK_BYTES = 1 << 20
"""How much of a result file is read at a time to hash it."""

_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


MAX_RESULT_TEXT_BYTES = 60 * 1024
"""A result sent to ``decide`` fits the operator's 64 KiB body limit."""


def parse_money(text: str, flag: str, asset: Any = None) -> Amount:
    """An amount above zero: ``$2``, ``2 USDC``; atomic units only when `asset` is given."""
    from paywire.money import parse_amount

    try:
        amount = parse_amount(text, asset)
    except PaywireError as error:
        raise InvalidInput(f"{flag}: {error}") from None
    if amount.atomic <= 0:
        raise InvalidInput(f"{flag}: the amount must be above zero")
    return amount


def parse_deadline(text: str) -> int:
    """``--deadline``: how long agents have, from posting (``1h``, ``2d``...)."""
    from paywire.ledger.model import MAX_TIMEOUT_S
    from paywire.tasks import REVIEW_WINDOW_S, SWEEP_WINDOW_S

    longest = MAX_TIMEOUT_S - REVIEW_WINDOW_S - SWEEP_WINDOW_S
    return read.parse_duration(text, "--deadline", low=1, high=longest)


def parse_dispute_window(text: str | None) -> int:
    from paywire.tasks import MAX_DISPUTE_WINDOW_S

    if text is None:
        return 0
    return read.parse_duration(text, "--dispute-window", low=0, high=MAX_DISPUTE_WINDOW_S)


def parse_shares(flags: Sequence[str]) -> dict[str, int] | None:
    """``--share ADDR=PARTS`` flags (an address or a wallet name; whole parts)."""
    if not flags:
        return None
    if len(flags) > MAX_SHARE_FLAGS:
        raise InvalidInput(f"--share: at most {MAX_SHARE_FLAGS} flags")
    shares: dict[str, int] = {}
    for flag in flags:
        who, sep, parts = flag.rpartition("=")
        text = parts.strip()
        if not sep or not text.isdigit() or len(text) > 13 or not 0 < int(text) <= MAX_SHARE_PARTS:
            raise InvalidInput(
                f"--share {flag[:60]!r}: write ADDRESS=PARTS or WALLET=PARTS, with PARTS a "
                f"whole number from 1 to {MAX_SHARE_PARTS}, e.g. --share bob=3"
            )
        address = read.resolve_address(who, "--share")
        if address in shares:
            raise InvalidInput(f"--share names {address} twice")
        shares[address] = int(text)
    return shares


def parse_fee(text: str | None, asset: Any) -> dict[str, str] | None:
    """``--fee ACCOUNT=AMOUNT``: the operator's fees account and the fee (e.g.
    ``operator:fees:USDC=$0.05``)."""
    if text is None:
        return None
    account, sep, amount = text.rpartition("=")
    if not sep or not account.strip():
        raise InvalidInput(
            f"--fee {text[:60]!r}: write ACCOUNT=AMOUNT, e.g. --fee operator:fees:USDC='$0.05'"
        )
    return {"account": account.strip(), "amount": str(parse_money(amount, "--fee", asset).atomic)}


def read_check(path: Path | None) -> dict[str, Any] | None:
    """``--check FILE.json``: an acceptance check's JSON, read strictly."""
    from paywire.tasks.checks import REMOTE_CHECK_KINDS, check_from_json

    if path is None:
        return None
    data = _read_file(path, MAX_CHECK_FILE_BYTES, "--check")
    try:
        return dict(check_from_json(data, kinds=REMOTE_CHECK_KINDS).to_json())
    except PaywireError as error:
        raise InvalidInput(f"--check {path}: {error}") from None


def result_digest(path: Path) -> str:
    """``--result FILE``: the SHA-256 of the file's bytes, lower-case hex."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(RESULT_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as error:
        raise InvalidInput(f"--result: cannot read {path}: {error.strerror}") from None
    return digest.hexdigest()


def read_result_text(path: Path) -> str:
    """``--result FILE`` for ``decide``: the delivered text itself (UTF-8, at most
    `MAX_RESULT_TEXT_BYTES`: it travels in the request's body)."""
    data = _read_file(path, MAX_RESULT_TEXT_BYTES, "--result")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"--result: {path} is not UTF-8 text") from None


def read_mandate(path: Path | None) -> dict[str, Any] | None:
    """``--mandate FILE``: the task mandate the principal handed over (a chain's JSON or
    base64, or a signed mandate's JSON), as the JSON object sent with `take`."""
    from paywire.mandate import MandateChain, SignedMandate

    if path is None:
        return None
    data = read.read_bytes(path, "task mandate")
    try:
        text = data.decode("utf-8").strip()
        if text.startswith("{"):
            value = json.loads(text)
            if isinstance(value, dict) and "chain" not in value:
                return SignedMandate.from_dict(value).to_dict()
            return MandateChain.from_json(text).to_dict()
        return MandateChain.from_base64(text).to_dict()
    except (ValueError, PaywireError) as error:
        raise InvalidInput(f"--mandate {path}: not a task mandate ({error})") from None


def mandate_file(directory: Path, task_id: str, agent: str) -> Path:
    """Where `post` writes an agent's task mandate: ``task-<id>-<agent>.mandate.json``."""
    safe = _UNSAFE_FILE_CHARS.sub("_", task_id)
    return directory / f"task-{safe}-{agent}.mandate.json"


def _read_file(path: Path, limit: int, flag: str) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except OSError as error:
        raise InvalidInput(f"{flag}: cannot read {path}: {error.strerror}") from None
    if len(data) > limit:
        raise InvalidInput(f"{flag}: {path} is larger than {limit} bytes")
    return data


# --- the operator ----------------------------------------------------------------------------


class Operator:
    """The operator's task endpoints at `url` (`paywire.service.tasks`)."""

    def __init__(self, url: str | None) -> None:
        from paywire.cli.chain import _url

        self.url = _url(url)
        self._network: str | None = None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        from paywire.cli.chain import OperatorError, _call

        answer = _call(method, self.url, path, body)
        if not isinstance(answer, dict):
            raise OperatorError(f"the operator's answer to {method} {path} is malformed")
        return answer

    @property
    def network(self) -> str:
        """The operator's ledger network, which signed requests name."""
        if self._network is None:
            self._network = str(self.call("GET", "/tasks/_info")["network"])
        return self._network

    def task(self, task_id: str) -> dict[str, Any]:
        return self.call("GET", task_path(task_id))

    def books(self, task_id: str) -> dict[str, Any]:
        return self.call("GET", task_path(task_id) + "/books")

    def tasks(self, principal: str | None, agent: str | None) -> dict[str, Any]:
        query = {key: value for key, value in (("principal", principal), ("agent", agent)) if value}
        return self.call("GET", "/tasks" + (f"?{urlencode(query)}" if query else ""))

    def signed(
        self, key: PrivateKey, action: str, task_id: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Sign `action` on `task_id` with `key` and send it; the operator's answer."""
        from paywire.tasks.requests import sign_task_request

        body = sign_task_request(key, action, self.network, task_id, params)
        path = "/tasks" if action == "post" else f"{task_path(task_id)}/{action}"
        return self.call("POST", path, body)

    def sweep(self, action: str, task_id: str) -> dict[str, Any]:
        """``release`` or ``expire``: no signature."""
        return self.call("POST", f"{task_path(task_id)}/{action}")


def task_path(task_id: str) -> str:
    from paywire.tasks.model import check_task_id

    try:
        check_task_id(task_id)
    except PaywireError as error:
        raise InvalidInput(f"task id: {error}") from None
    return "/tasks/" + quote(task_id, safe="/:@+=")
