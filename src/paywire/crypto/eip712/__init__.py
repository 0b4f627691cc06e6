"""EIP-712 typed structured data: compile a type once, hash each message fast.

A paid request carries an EIP-712 signature (EIP-3009 ``TransferWithAuthorization`` on a
chain, a paywire transfer authorization on the ledger network); the facilitator hashes the
message and recovers the signer. `StructType` parses and checks a type definition once and
compiles it into one small encoder callable per field, so hashing a message does no
type-string parsing; `TypedMessage` binds it to an `Eip712Domain` whose separator is
precomputed. Digests are byte-identical to ``eth_account.messages.encode_typed_data``.

Where eth_account is lenient, paywire is strict, so that what is hashed is what the signer
saw and the same JSON hashes the same in every wallet:

- a missing field is an error (eth_account hashes a missing struct or string as zeros);
- an extra field is an error (eth_account ignores it: unsigned data riding along);
- ``bytesN`` takes exactly N bytes (eth_account right-pads shorter values);
- ``T[k]`` takes exactly k items (eth_account does not check);
- ``bytes``/``bytesN`` text must be ``0x`` hex (eth_account hashes other text as UTF-8);
- ``bool`` takes only true/false (also 0/1 and "true"/"false"; eth_account takes any truthy);
- integer text is plain decimal or ``0x`` hex (eth_account takes whatever ``int()`` does);
- ``EIP712Domain`` in a JSON ``types`` must list its fields in the canonical order and
  types (eth_account silently reorders them, so wallets that follow the list disagree);
- recursive types and types not used by the primary type are refused.

The parts: the value encoders (`_encode`), type definitions compiled into a `StructType`
(`_struct`), and `Eip712Domain`, `TypedMessage` and the generic JSON form (`_message`).
"""

from paywire.crypto.eip712._encode import (
    MAX_ARRAY_LENGTH,
    MAX_INTEGER_TEXT_CHARS,
    MAX_MESSAGE_BYTES,
    InvalidTypedData,
)
from paywire.crypto.eip712._message import (
    COMPILED_TYPE_CACHE_SIZE,
    DOMAIN_CACHE_SIZE,
    DOMAIN_FIELDS,
    TRANSFER_WITH_AUTHORIZATION,
    Eip712Domain,
    TypedMessage,
    digest_typed_data,
    recover_typed_data,
    typed_message_from_json,
)
from paywire.crypto.eip712._message import _cached_struct as _cached_struct
from paywire.crypto.eip712._struct import (
    EIP712_DOMAIN,
    MAX_ARRAY_DIMENSIONS,
    MAX_FIELDS_PER_STRUCT,
    MAX_NAME_CHARS,
    MAX_STRUCT_TYPES,
    MAX_TOTAL_FIELDS,
    StructType,
    TypesJson,
)

__all__ = [
    "COMPILED_TYPE_CACHE_SIZE",
    "DOMAIN_CACHE_SIZE",
    "DOMAIN_FIELDS",
    "EIP712_DOMAIN",
    "MAX_ARRAY_DIMENSIONS",
    "MAX_ARRAY_LENGTH",
    "MAX_FIELDS_PER_STRUCT",
    "MAX_INTEGER_TEXT_CHARS",
    "MAX_MESSAGE_BYTES",
    "MAX_NAME_CHARS",
    "MAX_STRUCT_TYPES",
    "MAX_TOTAL_FIELDS",
    "TRANSFER_WITH_AUTHORIZATION",
    "Eip712Domain",
    "InvalidTypedData",
    "StructType",
    "TypedMessage",
    "TypesJson",
    "digest_typed_data",
    "recover_typed_data",
    "typed_message_from_json",
]
