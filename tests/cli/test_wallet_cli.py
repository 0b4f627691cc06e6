"""`paywire wallet`: driven through `paywire.cli.run` as a user would, in a temporary home."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from eth_account import Account

from paywire.cli import run
from paywire.crypto.keystore import SCRYPT_N_LIGHT, SCRYPT_N_STANDARD, KeyStore

PASSPHRASE = "wallet test passphrase"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAYWIRE_HOME", str(tmp_path))
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    return tmp_path


def wallet(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["wallet", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code: int, err: str, contains: str) -> None:
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert contains in lines[0]
    assert "Traceback" not in err


def secret_of(home: Path, name: str) -> str:
    return KeyStore(home / "keys").load(name, PASSPHRASE).to_hex()[2:]


def test_new_list_show(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = wallet(capsys, "new", "alice")
    assert code == 0, err
    info = KeyStore(home / "keys").info("alice")
    assert "created key alice" in out
    assert info.address in out
    assert str(info.path) in out
    assert "light key derivation" in err
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700

    code, out, _ = wallet(capsys, "list")
    assert code == 0
    assert "alice" in out
    assert info.address in out

    code, out, err = wallet(capsys, "show", "alice")
    assert code == 0
    assert info.address in out
    assert str(info.path) in out
    secret = secret_of(home, "alice")
    assert secret not in (out + err).lower()
    assert "private" not in out


def test_no_command_shows_a_private_key_unless_asked(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seen = ""
    for args in (["new", "alice"], ["list"], ["show", "alice"], ["new", "alice"]):
        _, out, err = wallet(capsys, *args)
        seen += out + err
    assert secret_of(home, "alice") not in seen.lower()


def test_show_private_key_on_request(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wallet(capsys, "new", "alice")
    code, out, err = wallet(capsys, "show", "alice", "--private-key")
    assert code == 0, err
    secret = secret_of(home, "alice")
    assert f"0x{secret}" in out
    assert "warning:" in err
    assert secret not in err


def test_import_from_a_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    account = Account.create()
    key_file = home / "key.txt"
    key_file.write_text(account.key.hex() + "\n")
    code, out, err = wallet(capsys, "import", "imported", "--private-key-file", str(key_file))
    assert code == 0, err
    assert account.address in out
    assert account.key.hex().removeprefix("0x") not in (out + err).lower()
    assert KeyStore(home / "keys").load("imported", PASSPHRASE).address == account.address


def test_import_refuses_a_bad_key_file_without_echoing_it(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    almost = "ab" * 31 + "zz"
    key_file = home / "key.txt"
    key_file.write_text(almost)
    code, _, err = wallet(capsys, "import", "x", "--private-key-file", str(key_file))
    assert_one_error_line(code, err, "64 hex digits")
    assert almost not in err
    code, _, err = wallet(capsys, "import", "x", "--private-key-file", str(home / "missing"))
    assert_one_error_line(code, err, "cannot read private key file")
    key_file.write_bytes(b"\xff" * 64)
    code, _, err = wallet(capsys, "import", "x", "--private-key-file", str(key_file))
    assert_one_error_line(code, err, "does not hold a private key")
    assert not (home / "keys" / "x.json").exists()


def test_import_needs_a_key_file(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = wallet(capsys, "import", "x")
    assert code == 2  # a usage error: the key is never taken as an argument
    assert "--private-key-file" in err


def test_duplicate_name(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wallet(capsys, "new", "alice")
    before = (home / "keys" / "alice.json").read_bytes()
    code, out, err = wallet(capsys, "new", "alice")
    assert_one_error_line(code, err, "a key named alice already exists")
    assert out == ""
    assert (home / "keys" / "alice.json").read_bytes() == before


@pytest.mark.parametrize("name", ["Alice", "../evil", "-x", "a b", "a" * 65])
def test_bad_names(home: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    code, _, err = wallet(capsys, "new", "--", name)
    assert_one_error_line(code, err, "is not valid")
    assert not (home / "keys").exists()


def test_wrong_passphrase(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wallet(capsys, "new", "alice")
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", "not it")
    code, out, err = wallet(capsys, "show", "alice", "--private-key")
    assert_one_error_line(code, err, "wrong passphrase")
    assert "0x" + "0" * 10 not in out


def test_missing_key(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = wallet(capsys, "show", "ghost")
    assert_one_error_line(code, err, "no key named ghost")


def test_passphrase_file(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAYWIRE_PASSPHRASE")
    passphrase_file = home / "passphrase"
    passphrase_file.write_text("from a file\n")
    code, _, err = wallet(capsys, "new", "alice", "--passphrase-file", str(passphrase_file))
    assert code == 0, err
    assert KeyStore(home / "keys").load("alice", "from a file").address
    code, out, err = wallet(
        capsys, "show", "alice", "--private-key", "--passphrase-file", str(passphrase_file)
    )
    assert code == 0, err
    assert "private" in out


def test_empty_passphrase_is_refused(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", "")
    code, _, err = wallet(capsys, "new", "alice")
    assert_one_error_line(code, err, "passphrase is empty")


def test_light_kdf_flag_and_env(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAYWIRE_LIGHT_KDF")
    assert wallet(capsys, "new", "flagged", "--light-kdf")[0] == 0
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    assert wallet(capsys, "new", "from-env")[0] == 0
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "0")
    code, _, err = wallet(capsys, "new", "standard")
    assert code == 0
    assert "light" not in err

    def cost(name: str) -> int:
        document = json.loads((home / "keys" / f"{name}.json").read_text())
        return int(document["crypto"]["kdfparams"]["n"])

    assert cost("flagged") == cost("from-env") == SCRYPT_N_LIGHT
    assert cost("standard") == SCRYPT_N_STANDARD


def test_list_when_empty_and_with_a_broken_file(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = wallet(capsys, "list")
    assert code == 0
    assert "no keys" in out
    wallet(capsys, "new", "alice")
    (home / "keys" / "broken.json").write_text("{")
    code, out, err = wallet(capsys, "list")
    assert code == 0
    assert "alice" in out
    assert "broken" not in out
    assert "warning: skipped" in err
    assert "broken.json" in err


def test_home_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PAYWIRE_HOME", raising=False)
    monkeypatch.setenv("PAYWIRE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("PAYWIRE_LIGHT_KDF", "1")
    other = tmp_path / "elsewhere"
    assert run(["--home", str(other), "wallet", "new", "alice"]) == 0
    capsys.readouterr()
    assert (other / "keys" / "alice.json").exists()
