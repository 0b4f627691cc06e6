"""Contract sources shipped with paywire (Vyper), compiled by `paywire.chain.compile`."""
