"""Everything `paywire.__all__` promises is importable."""

import pytest

import paywire


@pytest.mark.parametrize("name", paywire.__all__)
def test_public_names_resolve(name: str) -> None:
    assert getattr(paywire, name) is not None


def test_unknown_names_raise() -> None:
    with pytest.raises(AttributeError):
        _ = paywire.no_such_thing  # type: ignore[attr-defined]
