"""Keystore v3 files and the named-key store: round trips, interoperability, refusals."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest
from eth_account import Account

from paywire.crypto import keystore as keystore_module
from paywire.crypto.keys import PrivateKey
from paywire.crypto.keystore import (
    SCRYPT_N_LIGHT,
    SCRYPT_N_STANDARD,
    InvalidKeyName,
    InvalidKeystore,
    KeyExists,
    KeyInfo,
    KeyNotFound,
    KeyStore,
    WrongPassphrase,
    decrypt_key,
    encrypt_key,
    keystore_address,
)
from paywire.errors import InvalidInput, NotFound

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", light_kdf=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_list_info_load(store: KeyStore) -> None:
    assert store.list() == []  # a missing folder is an empty store, and is not created
    assert not store.directory.exists()
    alice = store.create("alice", PASSPHRASE)
    bob = store.create("bob-2.x_y", PASSPHRASE)
    assert alice == KeyInfo("alice", alice.address, store.directory / "alice.json")
    assert store.list() == [alice, bob]
    assert store.info("alice") == alice
    key = store.load("alice", PASSPHRASE)
    assert key.address == alice.address
    assert _mode(store.directory) == 0o700
    assert _mode(alice.path) == 0o600
    assert sorted(path.name for path in store.directory.iterdir()) == [
        "alice.json",
        "bob-2.x_y.json",
    ]  # no temporary files left behind


def test_files_are_standard_keystore_v3(store: KeyStore) -> None:
    key = PrivateKey.generate()
    info = store.import_key("imported", key, PASSPHRASE)
    document = json.loads(info.path.read_text())
    assert document["version"] == 3
    assert document["crypto"]["kdf"] == "scrypt"
    assert document["crypto"]["kdfparams"]["n"] == SCRYPT_N_LIGHT
    assert key.to_hex()[2:] not in info.path.read_text().lower()
    # eth_account (and so geth, MetaMask...) reads what paywire writes
    assert bytes(Account.decrypt(document, PASSPHRASE)) == key.to_bytes()


def test_standard_cost_is_the_default(tmp_path: Path) -> None:
    document = encrypt_key(PrivateKey.generate(), PASSPHRASE)
    assert document["crypto"]["kdfparams"]["n"] == SCRYPT_N_STANDARD  # type: ignore[index]
    assert KeyStore(tmp_path).light_kdf is False


@pytest.mark.parametrize("kdf", ["scrypt", "pbkdf2"])
def test_reads_files_written_by_eth_account(store: KeyStore, kdf: str) -> None:
    account = Account.create()
    iterations = 2**10 if kdf == "scrypt" else 1000
    document = Account.encrypt(account.key, PASSPHRASE, kdf=kdf, iterations=iterations)  # type: ignore[arg-type]
    store.directory.mkdir(parents=True)
    (store.directory / "other.json").write_text(json.dumps(document))
    assert store.info("other").address == account.address
    assert store.load("other", PASSPHRASE).to_bytes() == bytes(account.key)


def test_wrong_passphrase(store: KeyStore) -> None:
    store.create("alice", PASSPHRASE)
    with pytest.raises(WrongPassphrase) as caught:
        store.load("alice", PASSPHRASE + "!")
    assert caught.value.code == "wrong_passphrase"


def test_keys_are_never_overwritten(store: KeyStore) -> None:
    first = store.create("alice", PASSPHRASE)
    content = first.path.read_bytes()
    with pytest.raises(KeyExists) as caught:
        store.create("alice", PASSPHRASE)
    assert caught.value.code == "key_exists"
    with pytest.raises(KeyExists):
        store.import_key("alice", PrivateKey.generate(), PASSPHRASE)
    assert first.path.read_bytes() == content


def test_a_race_for_a_name_has_one_winner(store: KeyStore) -> None:
    results: list[object] = []

    def create() -> None:
        try:
            results.append(store.create("race", PASSPHRASE))
        except KeyExists as error:
            results.append(error)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [result for result in results if isinstance(result, KeyInfo)]
    assert len(winners) == 1
    assert store.load("race", PASSPHRASE).address == winners[0].address
    assert [path.name for path in store.directory.iterdir()] == ["race.json"]


def test_the_link_step_refuses_an_existing_file(tmp_path: Path) -> None:
    # Another process wrote the file between the existence check and the link.
    target = tmp_path / "late.json"
    target.write_text("theirs")
    with pytest.raises(KeyExists):
        keystore_module._write_new(target, b"ours", "late")
    assert target.read_text() == "theirs"
    assert [path.name for path in tmp_path.iterdir()] == ["late.json"]


def test_missing_key(store: KeyStore) -> None:
    with pytest.raises(KeyNotFound, match="no key named ghost") as caught:
        store.info("ghost")
    assert isinstance(caught.value, NotFound)
    assert caught.value.code == "key_not_found"
    with pytest.raises(KeyNotFound):
        store.load("ghost", PASSPHRASE)


@pytest.mark.parametrize(
    "name",
    ["", "Alice", "-a", ".a", "_a", "a/b", "../a", "a b", "a" * 65, "ä", "a\n", "a\x00"],
)
def test_bad_names(store: KeyStore, name: str) -> None:
    with pytest.raises(InvalidKeyName) as caught:
        store.create(name, PASSPHRASE)
    assert caught.value.code == "invalid_key_name"
    with pytest.raises(InvalidKeyName):
        store.info(name)
    assert not store.directory.exists()


def test_longest_name(store: KeyStore) -> None:
    name = "a" * 64
    assert store.create(name, PASSPHRASE).name == name


def test_empty_passphrase_is_refused_for_new_keys(store: KeyStore) -> None:
    with pytest.raises(InvalidInput, match="passphrase is empty"):
        store.create("alice", "")
    with pytest.raises(InvalidInput, match="at most"):
        store.create("alice", "x" * 5000)


def _write(store: KeyStore, name: str, content: str | bytes) -> Path:
    store.directory.mkdir(parents=True, exist_ok=True)
    path = store.directory / f"{name}.json"
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    return path


def _valid_document() -> dict[str, object]:
    document: dict[str, object] = encrypt_key(PrivateKey.generate(), PASSPHRASE, light_kdf=True)
    return document


def _altered(**changes: object) -> str:
    document = json.loads(json.dumps(_valid_document()))
    for dotted, value in changes.items():
        target = document
        *parents, leaf = dotted.split("__")
        for parent in parents:
            target = target[parent]
        if value is None:
            del target[leaf]
        else:
            target[leaf] = value
    return json.dumps(document)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "not a JSON file"),
        ("[]", "a keystore is a JSON object"),
        (_altered(version=4), "only keystore version 3"),
        (_altered(crypto=None), "no crypto section"),
        (_altered(crypto__cipher="aes-256-gcm"), "unsupported cipher"),
        (_altered(crypto__kdf="argon2"), "unsupported key derivation"),
        (_altered(crypto__mac="zz"), "mac is not hex"),
        (_altered(crypto__ciphertext="00"), "ciphertext is 1 bytes"),
        (_altered(crypto__kdfparams__n=2**30), "more work than paywire allows"),
        (_altered(crypto__kdfparams__n=1000), "power of 2"),
        (_altered(crypto__kdfparams__p=10**6), "more work"),
        (_altered(crypto__kdfparams__r=True), "not a positive integer"),
        (_altered(crypto__kdfparams__dklen=64), "dklen must be 32"),
        (_altered(address=None), "no address field"),
        (_altered(address="1234"), "address field is invalid"),
        (" " * (70 * 1024), "larger than a keystore file can be"),
    ],
)
def test_malformed_files(store: KeyStore, content: str, match: str) -> None:
    path = _write(store, "bad", content)
    with pytest.raises(InvalidKeystore, match=match) as caught:
        store.load("bad", PASSPHRASE)
    assert str(path) in str(caught.value)
    assert caught.value.code == "invalid_keystore"
    with pytest.raises(InvalidKeystore, match=match):
        store.info("bad")


def test_an_altered_address_is_caught_on_decryption(store: KeyStore) -> None:
    other = PrivateKey.generate().address
    path = _write(store, "swapped", _altered(address=other[2:].lower()))
    assert store.info("swapped").address == other  # the claim, until decrypted
    with pytest.raises(InvalidKeystore, match="the file was altered"):
        store.load("swapped", PASSPHRASE)
    assert path.exists()


def test_list_skips_and_reports_unreadable_files(store: KeyStore) -> None:
    good = store.create("good", PASSPHRASE)
    _write(store, "broken", "{}")
    _write(store, "Not A Name", _altered())
    _write(store, ".hidden", "{}")
    (store.directory / "notes.txt").write_text("not a key")
    keys, problems = store.scan()
    assert keys == [good]
    assert store.list() == [good]
    assert sorted(problem.path.name for problem in problems) == ["Not A Name.json", "broken.json"]
    assert all(problem.reason for problem in problems)


def test_keystore_address_checks_the_document() -> None:
    document = _valid_document()
    assert keystore_address(document).startswith("0x")
    capitalised = {"Crypto" if key == "crypto" else key: value for key, value in document.items()}
    assert keystore_address(capitalised) == keystore_address(document)  # geth's old spelling
    with pytest.raises(WrongPassphrase):
        decrypt_key(document, "nope")
    with pytest.raises(InvalidInput):
        decrypt_key(document, 5)  # type: ignore[arg-type]
