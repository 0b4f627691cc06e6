"""The mandate file `paywire mandate issue --from-file` reads: TOML (``.toml``) or JSON
(``.json``) with the same fields as the flags, strict (unknown keys are refused), and how
flags given too override it. The format is in `paywire.cli.mandate.FILE_FORMAT`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from paywire import _json
from paywire.cli._mandate_input import IssueSpec, LimitSpec, bounded, read_bytes
from paywire.errors import InvalidInput

LIMIT_KEYS = ("network", "asset", "total", "per_payment", "windows")
FILE_KEYS = (
    "principal",
    "agent",
    "purpose",
    "task_id",
    "valid_for",
    "valid_until",
    "payees",
    "origins",
    "limits",
    *LIMIT_KEYS,
)


def read_issue_file(path: Path) -> IssueSpec:
    """The fields of a mandate file: TOML (``.toml``) or JSON (``.json``), strict."""
    data = read_bytes(path, "mandate file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text") from None
    try:
        if path.suffix.lower() == ".json":
            document: object = _json.loads(text)
        else:
            import tomllib

            document = tomllib.loads(text)
    except (ValueError, RecursionError) as error:  # TOMLDecodeError and JSONDecodeError
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise InvalidInput(f"{path}: not valid {kind} ({error})") from None
    return _issue_fields(document, path)


def _issue_fields(document: object, path: Path) -> IssueSpec:
    table = _table(document, path, "", FILE_KEYS)
    spec = IssueSpec(
        principal=_text(table, "principal", path),
        agent=_text(table, "agent", path),
        purpose=_text(table, "purpose", path),
        task_id=_text(table, "task_id", path),
        valid_for=_text(table, "valid_for", path),
        valid_until=_text(table, "valid_until", path, numbers=True),
        payees=_texts(table, "payees", path),
        origins=_texts(table, "origins", path),
    )
    single = any(key in table for key in LIMIT_KEYS)
    if "limits" in table:
        if single:
            raise InvalidInput(
                f"{path}: give one limit with top-level network/asset/total/... or several "
                "as [[limits]], not both"
            )
        items = table["limits"]
        if not isinstance(items, list) or not items:
            raise InvalidInput(f"{path}: limits must be a list of tables ([[limits]])")
        spec.limits = [
            _limit_fields(item, path, f"limits[{index}].")
            for index, item in enumerate(bounded(items, f"{path}: limits"))
        ]
    elif single:
        spec.limits = [_limit_fields(table, path, "", top=True)]
    return spec


def _limit_fields(value: object, path: Path, where: str, *, top: bool = False) -> LimitSpec:
    table = _table(value, path, where, FILE_KEYS if top else LIMIT_KEYS)
    windows = table.get("windows")
    if isinstance(windows, dict):  # { "1h" = "$1" } as well as ["1h=$1"]
        windows = [f"{length}={amount}" for length, amount in windows.items()]
        table = {**table, "windows": windows}
    return LimitSpec(
        network=_text(table, "network", path, where),
        asset=_text(table, "asset", path, where),
        total=_text(table, "total", path, where, numbers=True),
        per_payment=_text(table, "per_payment", path, where, numbers=True),
        windows=_texts(table, "windows", path, where),
        where=f"{path}: {where}",
    )


def _table(value: object, path: Path, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{path}: {where or 'the file'} must be a table of keys")
    unknown = sorted(str(key) for key in value if key not in keys)
    if unknown:
        raise InvalidInput(
            f"{path}: unknown key {where}{unknown[0][:40]!r}; the keys are {', '.join(keys)}"
        )
    return value


def _text(
    table: dict[str, Any], key: str, path: Path, where: str = "", *, numbers: bool = False
) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{path}: {where}{key} must be text")
    return value


def _texts(table: dict[str, Any], key: str, path: Path, where: str = "") -> list[str] | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidInput(f"{path}: {where}{key} must be a list of text")
    return bounded(list(value), f"{path}: {where}{key}")


def merge(file: IssueSpec, flags: IssueSpec) -> IssueSpec:
    """The file's fields with the flags' over them (a limit flag overrides the file's
    single limit; with several [[limits]] in the file, limit flags are refused)."""
    merged = replace(
        file,
        **{
            name: getattr(flags, name)
            for name in (
                "principal",
                "agent",
                "purpose",
                "task_id",
                "valid_for",
                "valid_until",
                "payees",
                "origins",
            )
            if getattr(flags, name) is not None
        },
    )
    if flags.valid_for is not None and flags.valid_until is None:
        merged.valid_until = None
    if flags.valid_until is not None and flags.valid_for is None:
        merged.valid_for = None
    flag_limit = flags.limits[0] if flags.limits else None
    if flag_limit is None:
        return merged
    if len(file.limits) > 1:
        raise InvalidInput(
            "the file gives several [[limits]]; --network, --asset, --total, --per-payment "
            "and --window apply to a single limit: edit the file instead"
        )
    if not file.limits:
        merged.limits = [flag_limit]
        return merged
    base = file.limits[0]
    merged.limits = [
        LimitSpec(
            **{
                key: getattr(flag_limit, key)
                if getattr(flag_limit, key) is not None
                else getattr(base, key)
                for key in LIMIT_KEYS
            },
            where=base.where,
        )
    ]
    return merged
