"""The reserves check: per asset, the ledger's liabilities (what its non-external accounts
hold) must not exceed what the reserves hold on chain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from paywire.chain.errors import ChainError
from paywire.chain.reserve._reserve import Reserve
from paywire.ledger import AccountKind, Ledger


@dataclass(frozen=True, slots=True)
class ReserveBalance:
    """One reserve's holding on chain."""

    network: str
    token: str
    address: str
    balance: int


@dataclass(frozen=True, slots=True)
class AssetReserves:
    """One asset's books against its reserves.

    `liabilities` is what the ledger's non-external accounts hold (posted); `in_flight` is
    what withdrawals hold toward the reserves (paid on chain, perhaps, but not yet posted);
    `on_chain` what the reserves hold. Solvent when on_chain + in_flight >= liabilities.
    """

    asset: str
    liabilities: int
    in_flight: int
    on_chain: int
    reserves: tuple[ReserveBalance, ...]

    @property
    def surplus(self) -> int:
        """Reserves beyond liabilities (negative: a shortfall)."""
        return self.on_chain + self.in_flight - self.liabilities

    @property
    def ok(self) -> bool:
        return self.surplus >= 0


@dataclass(frozen=True, slots=True)
class ReservesReport:
    """The reserves check: one line per asset; `ok` when every asset is covered."""

    assets: tuple[AssetReserves, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and all(asset.ok for asset in self.assets)


# ----- the reserves check -----------------------------------------------------------------------


def check_reserves(ledger: Ledger, reserves: Sequence[Reserve]) -> ReservesReport:
    """Per asset of `reserves`: the ledger's liabilities against the reserves' balances on
    chain. Reads the ledger in one snapshot, then each reserve's balance."""
    by_asset: dict[str, list[Reserve]] = {}
    seen: set[str] = set()
    for reserve in reserves:
        if reserve.account_id not in seen:  # the same reserve twice must not count twice
            seen.add(reserve.account_id)
            by_asset.setdefault(reserve.asset.code, []).append(reserve)
    liabilities = dict.fromkeys(by_asset, 0)
    in_flight = dict.fromkeys(by_asset, 0)
    reserve_ids = seen
    problems: list[str] = []
    with ledger.reader() as reader:
        for state in reader.all_accounts():
            code = state.asset.code
            if code not in liabilities:
                continue
            if state.kind is AccountKind.EXTERNAL:
                if state.id in reserve_ids:
                    in_flight[code] += state.credits_pending
                continue
            liabilities[code] += state.credits_posted - state.debits_posted
    assets = []
    for code, members in sorted(by_asset.items()):
        balances = []
        for reserve in members:
            try:
                balance = reserve.token.balance_of(reserve.address)
            except ChainError as error:
                problems.append(f"{reserve}: cannot read the balance on chain: {error}")
                balance = 0
            balances.append(
                ReserveBalance(
                    reserve.chain.network, reserve.token.address, reserve.address, balance
                )
            )
        assets.append(
            AssetReserves(
                asset=code,
                liabilities=liabilities[code],
                in_flight=in_flight[code],
                on_chain=sum(item.balance for item in balances),
                reserves=tuple(balances),
            )
        )
    return ReservesReport(tuple(assets), tuple(problems))
