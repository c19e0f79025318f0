"""Key material: generated once, shown once, stored as a hash."""

import enum
import hashlib
import secrets

KEY_PREFIX = "cw_"


class Scope(enum.StrEnum):
    read = "read"
    write = "write"
    admin = "admin"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(KEY_PREFIX) + 6]
