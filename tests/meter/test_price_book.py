"""Price books: exact prices from TOML or JSON, strict validation, lookup by id and wildcard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from paywire.meter import (
    MAX_PRICE_BOOK_BYTES,
    InvalidPriceBook,
    ModelPrice,
    PriceBook,
    UnknownModel,
    parse_price,
)
from paywire.meter.price_book import MAX_MODELS, MAX_PRICE_PICO
from paywire.money import ETH, USDC, Asset

GOOD_TOML = """
# prices per million tokens
[models."smollm2-135m-instruct"]
asset = "USDC"
input_per_mtok = "0.10"
output_per_mtok = "0.40"
cached_input_per_mtok = "0.05"
aliases = ["smollm2", "SmolLM2-135M"]

[models."gpt-4o-*"]
asset = "USDC"
input_per_mtok = "2.50"
output_per_mtok = 10

[models."gpt-4o-mini*"]
asset = "USDC"
input_per_mtok = "0.15"
output_per_mtok = "0.60"

[models."meta-llama/Llama-3.1-8B-Instruct"]
asset = "PUSD"
input_per_mtok = "0.000000000001"
output_per_mtok = "0"

[assets]
PUSD = 6
"""


@pytest.fixture
def book() -> PriceBook:
    return PriceBook.from_toml(GOOD_TOML)


def test_toml_prices_are_exact_pico_atomic_units(book: PriceBook) -> None:
    price = book.price("smollm2-135m-instruct")
    # 0.10 USDC per 10^6 tokens = 100_000 atomic / 10^6 = 0.1 atomic = 10^11 pico-atomic a token.
    assert price.input_pico == 100_000_000_000
    assert price.output_pico == 400_000_000_000
    assert price.cached_input_pico == 50_000_000_000
    assert price.asset == USDC
    assert price.per_mtok("input") == "0.1"
    assert price.priced_as == "smollm2-135m-instruct"
    assert price.book == book.digest
    assert len(book.digest) == 64


def test_integer_price_is_whole_units_and_cached_defaults_to_input(book: PriceBook) -> None:
    price = book.price("gpt-4o-2024-08-06")
    assert price.output_pico == 10 * 10**6 * 10**12 // 10**6
    assert price.per_mtok("output") == "10"
    assert price.cached_input_pico == price.input_pico


def test_price_finer_than_an_atomic_unit_is_kept(book: PriceBook) -> None:
    price = book.price("meta-llama/Llama-3.1-8B-Instruct")
    # 10^-12 PUSD per million tokens = 10^-6 atomic per 10^6 tokens = 1 pico-atomic a token.
    assert price.input_pico == 1
    assert price.output_pico == 0
    assert price.asset == Asset("PUSD", 6)
    assert price.per_mtok("input") == "0.000000000001"


def test_lookup_aliases_case_and_longest_wildcard(book: PriceBook) -> None:
    assert book.price("SmolLM2").priced_as == "smollm2-135m-instruct"
    assert book.price("SMOLLM2-135M-INSTRUCT").priced_as == "smollm2-135m-instruct"
    assert book.price("smollm2").model == "smollm2"
    assert book.price("gpt-4o-mini-2024-07-18").priced_as == "gpt-4o-mini*"
    assert book.price("gpt-4o-2024-08-06").priced_as == "gpt-4o-*"
    assert "gpt-4o-x" in book
    assert "gpt-4" not in book
    assert len(book) == 4
    assert [entry.priced_as for entry in book][:2] == ["smollm2-135m-instruct", "gpt-4o-*"]


@pytest.mark.parametrize("model", ["gpt-3.5-turbo", "smollm3", "", "x" * 500, "a b", "*"])
def test_unknown_model_is_a_typed_error(book: PriceBook, model: str) -> None:
    with pytest.raises(UnknownModel) as caught:
        book.price(model)
    assert caught.value.code == "unknown_model"


def test_catch_all_wildcard_prices_everything() -> None:
    book = PriceBook.from_toml(
        '[models."*"]\nasset = "USDC"\ninput_per_mtok = 1\noutput_per_mtok = 2\n'
    )
    assert book.price("anything-at-all").priced_as == "*"


def test_json_gives_the_same_book_and_digest(book: PriceBook) -> None:
    text = json.dumps(book.to_mapping())
    again = PriceBook.from_json(text)
    assert again.digest == book.digest
    assert again.price("smollm2") == book.price("smollm2")
    assert PriceBook(book.to_mapping()).digest == book.digest


def test_digest_ignores_form_but_not_prices() -> None:
    a = PriceBook.from_toml('[models.m]\nasset="USDC"\ninput_per_mtok="0.10"\noutput_per_mtok="1"')
    b = PriceBook.from_toml('[models.m]\noutput_per_mtok=1\ninput_per_mtok="0.1"\nasset="USDC"')
    c = PriceBook.from_toml('[models.m]\nasset="USDC"\ninput_per_mtok="0.11"\noutput_per_mtok="1"')
    assert a.digest == b.digest != c.digest


def test_load_from_files(tmp_path: Path, book: PriceBook) -> None:
    toml_file = tmp_path / "prices.toml"
    toml_file.write_text(GOOD_TOML)
    json_file = tmp_path / "prices.json"
    json_file.write_text(json.dumps(book.to_mapping()))
    assert PriceBook.load(toml_file).digest == book.digest
    assert PriceBook.load(json_file).digest == book.digest
    with pytest.raises(InvalidPriceBook, match=r"\.toml or \.json"):
        PriceBook.load(tmp_path / "prices.yaml")
    with pytest.raises(InvalidPriceBook, match="cannot read"):
        PriceBook.load(tmp_path / "missing.toml")


def _entry(**fields: str) -> str:
    lines = [f"{key} = {value}" for key, value in fields.items()]
    return '[models."m"]\n' + "\n".join(lines) + "\n"


BASE = {"asset": '"USDC"', "input_per_mtok": '"1"', "output_per_mtok": '"2"'}


def test_toml_float_is_refused_with_the_fix() -> None:
    with pytest.raises(InvalidPriceBook) as caught:
        PriceBook.from_toml(_entry(**{**BASE, "input_per_mtok": "0.10"}))
    message = str(caught.value)
    assert "floating-point" in message and "input_per_mtok" in message
    assert '"0.1"' in message
    assert caught.value.code == "invalid_price_book"


@pytest.mark.parametrize("number", ["0.10", "1e3", "1.0", "-0.5"])
def test_json_float_is_refused(number: str) -> None:
    text = (
        '{"models": {"m": {"asset": "USDC", "input_per_mtok": ' + number + ", "
        '"output_per_mtok": "1"}}}'
    )
    with pytest.raises(InvalidPriceBook, match="floating-point"):
        PriceBook.from_json(text)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            '{"models": {"m": {"asset": "USDC", "input_per_mtok": NaN, "output_per_mtok": 1}}}',
            "NaN",
        ),
        ('{"models": {}, "models": {}}', "twice"),
        ("[1, 2]", "JSON object"),
        ("{", "not valid JSON"),
        ('{"models": {"m": {"asset": "USDC", "input_per_mtok": 1' + "0" * 5000 + "}}}", "refused"),
        ("[" * 100_000, "refused|not valid"),
        (
            '{"models": {"m": {"asset": "USDC", "input_per_mtok": "1", "output_per_mtok": "1",'
            ' "aliases": [1.5]}}}',
            "alias",
        ),
    ],
)
def test_hostile_json_is_refused(text: str, match: str) -> None:
    with pytest.raises(InvalidPriceBook, match=match):
        PriceBook.from_json(text)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({**BASE, "output_per_mtok": '"-1"'}, "negative"),
        ({**BASE, "output_per_mtok": "-1"}, "negative"),
        ({**BASE, "input_per_mtok": '"1e3"'}, "plain decimal"),
        ({**BASE, "input_per_mtok": '" 1"'}, "plain decimal"),
        ({**BASE, "input_per_mtok": '"$1"'}, "plain decimal"),
        ({**BASE, "input_per_mtok": '"0.0000000000001"'}, "at most 12"),
        ({**BASE, "input_per_mtok": '"' + "9" * 65 + '"'}, "longer than"),
        ({**BASE, "input_per_mtok": '"' + "9" * 40 + '"'}, "bound"),
        ({**BASE, "input_per_mtok": "true"}, "not bool"),
        ({**BASE, "input_per_mtok": "1979-05-27"}, "not date"),
        ({**BASE, "input_per_mtok": "[1]"}, "not list"),
        ({**BASE, "colour": '"red"'}, "unknown key.*'colour'"),
        ({"asset": '"USDC"', "input_per_mtok": '"1"'}, "no 'output_per_mtok'"),
        ({**BASE, "asset": '"DOGE"'}, "asset 'DOGE' is unknown"),
        ({**BASE, "asset": "6"}, "asset 6 is unknown"),
        ({**BASE, "aliases": '"m2"'}, "list"),
        ({**BASE, "aliases": '["m"]'}, "priced twice"),
        ({**BASE, "aliases": '["M"]'}, "priced twice"),
        ({**BASE, "aliases": '["a b"]'}, "not a model id"),
        ({**BASE, "aliases": '["x*"]'}, "not a model id"),
        ({**BASE, "aliases": str([f"a{i}" for i in range(33)]).replace("'", '"')}, "aliases"),
    ],
)
def test_invalid_entries_are_refused(fields: dict[str, str], match: str) -> None:
    with pytest.raises(InvalidPriceBook, match=match):
        PriceBook.from_toml(_entry(**fields))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "non-empty 'models'"),
        ("[models]\n", "non-empty 'models'"),
        ("models = 3\n", "non-empty 'models'"),
        ("version = 2\n[models.m]\n", "unknown key.*'version'"),
        ('[models."a b"]\nasset = "USDC"\n', "not a model id"),
        ('[models."a*b"]\nasset = "USDC"\n', "not a model id"),
        (
            '[models."x*"]\nasset="USDC"\ninput_per_mtok=1\noutput_per_mtok=1\naliases=["y"]\n',
            "wildcard",
        ),
        ("[models.m]\nasset = \n", "not valid TOML"),
        ('[models.m]\nasset="USDC"\n[models.m]\n', "not valid TOML"),
        ("[models.m]\n[assets]\nUSDC = 2\n", "6 decimals, not 2"),
        ("[models.m]\n[assets]\nusd = 2\n", "asset 'usd'"),
        ("[models.m]\n[assets]\nPUSD = 99\n", "asset 'PUSD'"),
        ('[models.m]\n[assets]\nPUSD = "6"\n', "integer"),
        ("models = 1\nassets = 2\n", "assets"),
    ],
)
def test_invalid_books_are_refused(text: str, match: str) -> None:
    with pytest.raises(InvalidPriceBook, match=match):
        PriceBook.from_toml(text)


def test_model_names_clash_across_entries_without_regard_to_case() -> None:
    text = _entry(**BASE) + '[models."M"]\nasset="USDC"\ninput_per_mtok=1\noutput_per_mtok=1\n'
    with pytest.raises(InvalidPriceBook, match="priced twice"):
        PriceBook.from_toml(text)


def test_size_limits() -> None:
    with pytest.raises(InvalidPriceBook, match="larger than"):
        PriceBook.from_toml("#" * (MAX_PRICE_BOOK_BYTES + 1))
    with pytest.raises(InvalidPriceBook, match="larger than"):
        PriceBook.from_json(b" " * (MAX_PRICE_BOOK_BYTES + 1))
    with pytest.raises(InvalidPriceBook, match="UTF-8"):
        PriceBook.from_toml(b"\xff\xfe")
    many = {
        f"m{i}": {"asset": "USDC", "input_per_mtok": 1, "output_per_mtok": 1}
        for i in range(MAX_MODELS + 1)
    }
    with pytest.raises(InvalidPriceBook, match="more than"):
        PriceBook({"models": many})
    with pytest.raises(InvalidPriceBook, match="must be text"):
        PriceBook.from_toml(3)  # type: ignore[arg-type]


def test_eth_prices_allow_24_decimals() -> None:
    assert parse_price("0." + "0" * 23 + "1", ETH) == 1
    with pytest.raises(InvalidPriceBook, match="at most 24"):
        parse_price("0." + "0" * 24 + "1", ETH)


def test_model_price_by_hand_and_its_checks() -> None:
    price = ModelPrice.parse("m", USDC, input_per_mtok="1", output_per_mtok=2)
    assert price.cached_input_pico == price.input_pico == 10**12
    assert price.book == ""
    with pytest.raises(InvalidPriceBook):
        ModelPrice("m", "m", USDC, -1, 0, 0)
    with pytest.raises(InvalidPriceBook):
        ModelPrice("m", "m", USDC, MAX_PRICE_PICO + 1, 0, 0)
    with pytest.raises(InvalidPriceBook):
        ModelPrice("m", "m", USDC, True, 0, 0)
    with pytest.raises(InvalidPriceBook):
        ModelPrice("m", "m", "USDC", 0, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(InvalidPriceBook, match="model id"):
        ModelPrice.parse("a b", USDC, input_per_mtok="1", output_per_mtok="1")
    with pytest.raises(InvalidPriceBook, match="model id"):
        ModelPrice("a b", "m", USDC, 0, 0, 0)
    with pytest.raises(InvalidPriceBook, match="model id"):
        ModelPrice(3, "m", USDC, 0, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(InvalidPriceBook, match="priced_as"):
        ModelPrice("m", "a*b", USDC, 0, 0, 0)
    with pytest.raises(InvalidPriceBook, match="SHA-256"):
        ModelPrice("m", "m", USDC, 0, 0, 0, book="abc")
    assert ModelPrice("m", "m*", USDC, 0, 0, 0, book="0" * 64).priced_as == "m*"
