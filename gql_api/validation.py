"""Input rules shared by the API: e-mail addresses, passwords, names, and plain-text limits.

Each check returns the cleaned value or raises :class:`InvalidValue` with a message for the
client; :func:`collect` runs several and reports every failing field at once. Nothing here knows
about GraphQL: the resolvers turn :class:`InvalidInput` into ``BAD_USER_INPUT``.

Lengths are checked before anything expensive (hashing, parsing, the database), so that a 10 MB
string costs one ``len()``.
"""

from __future__ import annotations

import gzip
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import available_timezones

import orjson
from email_validator import EmailNotValidError, validate_email

EMAIL_MAX_LENGTH = 254  # RFC 5321 path limit; the column holds 255
PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
NAME_MAX_LENGTH = 100
TOKEN_MAX_LENGTH = 512  # opaque tokens and JWTs are far shorter; anything longer is garbage


class InvalidValue(ValueError):
    """One value broke a rule; the message is meant for the client."""


class InvalidInput(ValueError):
    """One or more fields broke their rules: ``fields`` maps field name -> message."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("Invalid input: " + ", ".join(sorted(fields)))
        self.fields = fields


def collect(checks: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each field's check; return the cleaned values or raise one :class:`InvalidInput`."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, check in checks.items():
        try:
            cleaned[field] = check()
        except InvalidValue as exc:
            errors[field] = str(exc)
    if errors:
        raise InvalidInput(errors)
    return cleaned


def plain_text(value: str, *, max_length: int) -> str:
    """Refuse NUL bytes (PostgreSQL cannot store them in text) and oversized strings."""
    if len(value) > max_length:
        raise InvalidValue(f"must be at most {max_length} characters")
    if "\x00" in value:
        raise InvalidValue("must not contain NUL characters")
    return value


def email(value: str) -> str:
    """Trimmed, lower-cased and syntactically valid (no DNS look-up)."""
    value = plain_text(value.strip(), max_length=EMAIL_MAX_LENGTH)
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidValue(f"is not a valid e-mail address: {exc}") from None
    return result.normalized.lower()


def login_email(value: str) -> str:
    """The e-mail as typed at login: cleaned like :func:`email`, but a malformed address is just
    an address nobody has (the same answer as an unknown one), not an input error."""
    value = plain_text(value.strip(), max_length=EMAIL_MAX_LENGTH)
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return value.lower()


def password(value: str) -> str:
    """8-128 characters of any script, not one of the 10,000 most common passwords.

    No composition rules (NIST SP 800-63B). Not trimmed: spaces are part of the password.
    """
    plain_text(value, max_length=PASSWORD_MAX_LENGTH)
    if len(value) < PASSWORD_MIN_LENGTH:
        raise InvalidValue(f"must be at least {PASSWORD_MIN_LENGTH} characters")
    if is_common_password(value):
        raise InvalidValue("is too common; choose a less guessable password")
    return value


def name(value: str) -> str:
    """1-100 characters after trimming."""
    value = plain_text(value.strip(), max_length=NAME_MAX_LENGTH)
    if not value:
        raise InvalidValue("must not be empty")
    return value


def token(value: str) -> str:
    """An opaque token as received: bounded and printable ASCII, else it cannot be ours."""
    value = plain_text(value.strip(), max_length=TOKEN_MAX_LENGTH)
    if not value or not value.isascii() or not value.isprintable():
        raise InvalidValue("is not a valid token")
    return value


def ip_address(value: str) -> str:
    """An IPv4 or IPv6 address, in its canonical spelling."""
    value = plain_text(value.strip(), max_length=64)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidValue("is not an IP address") from None


def device_info(value: Any) -> dict[str, Any] | None:
    """A small JSON object (see :data:`DEVICE_INFO_LIMITS`)."""
    if value is None:
        return None
    return json_object(value, DEVICE_INFO_LIMITS)


@cache
def _common_passwords() -> frozenset[str]:
    """Loaded on first use, once per process (about 10,000 entries, ~0.5 MB)."""
    data = (resources.files("gql_api") / "data" / "common-passwords.txt.gz").read_bytes()
    return frozenset(line for line in gzip.decompress(data).decode("utf-8").splitlines() if line)


def is_common_password(value: str) -> bool:
    return value.lower() in _common_passwords()


# --- profile ---
# Rules for the profile fields of updateMe and createUser. None (clear the field) is handled by
# the caller; these check a value that was given.

BIO_MAX_LENGTH = 2000
AVATAR_URL_MAX_LENGTH = 2048  # the column holds 2048
PHONE_MAX_LENGTH = 32  # the column holds 32
LOCALE_MAX_LENGTH = 35  # the column holds 35 (RFC 5646 recommends supporting 35)

# RFC 5646 well-formed language tags (grandfathered irregular tags aside): language with up to
# three extlangs, script, region, variants, extensions, private use.
_BCP47 = re.compile(
    r"(?:[a-z]{2,3}(?:-[a-z]{3}){0,3}|[a-z]{4,8})"
    r"(?:-[a-z]{4})?"
    r"(?:-(?:[a-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[a-z0-9]{5,8}|[0-9][a-z0-9]{3}))*"
    r"(?:-[0-9a-wy-z](?:-[a-z0-9]{2,8})+)*"
    r"(?:-x(?:-[a-z0-9]{1,8})+)?",
    re.IGNORECASE | re.ASCII,
)
_PHONE = re.compile(r"\+?[0-9 ().\-]+", re.ASCII)


def bio(value: str) -> str:
    return plain_text(value.strip(), max_length=BIO_MAX_LENGTH)


def avatar_url(value: str) -> str:
    """An absolute http(s) URL with a host, no spaces or control characters."""
    value = plain_text(value.strip(), max_length=AVATAR_URL_MAX_LENGTH)
    if any(c.isspace() or not c.isprintable() for c in value):
        raise InvalidValue("must be a URL without spaces")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise InvalidValue("is not a valid URL") from None
    if parts.scheme.lower() not in {"http", "https"} or not host:
        raise InvalidValue("must be an http:// or https:// URL")
    return value


def phone(value: str) -> str:
    """Digits with the usual separators, optionally starting with +; 5 to 15 digits (E.164)."""
    value = plain_text(value.strip(), max_length=PHONE_MAX_LENGTH)
    digits = sum(c.isdigit() for c in value)
    if not _PHONE.fullmatch(value) or not 5 <= digits <= 15:
        raise InvalidValue("must be a phone number such as +44 20 7946 0958")
    return value


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone(value: str) -> str:
    """An IANA time zone name, as spelled in the tz database (``Europe/Paris``, ``UTC``)."""
    value = value.strip()
    if len(value) > 64 or value not in _time_zones():
        raise InvalidValue("must be an IANA time zone such as Europe/Paris")
    return value


def locale(value: str) -> str:
    """A well-formed BCP 47 language tag (``en``, ``pt-BR``, ``zh-Hant-TW``)."""
    value = value.strip()
    if len(value) > LOCALE_MAX_LENGTH or not _BCP47.fullmatch(value):
        raise InvalidValue("must be a BCP 47 language tag such as en-GB")
    return value


def preferences(value: Any) -> dict[str, Any]:
    """A JSON object of bounded depth, size and key count (see :data:`PREFERENCES_LIMITS`)."""
    return json_object(value, PREFERENCES_LIMITS)


# --- JSON values ---
# Free-form JSON inputs (preferences, deviceInfo) are bounded in depth, size and key count on the
# way in, so that whatever is stored can be written back out: orjson, which encodes responses,
# refuses more than 254 levels of nesting and integers beyond 64 bits, and PostgreSQL's JSONB
# refuses NUL characters and infinities. The walk is iterative: no input can exhaust the stack.


@dataclass(frozen=True)
class JsonLimits:
    depth: int  # objects and arrays nested inside each other; {} alone is 1
    bytes: int  # as compact JSON in UTF-8
    keys: int  # object keys in the whole value


JSON_MAX_DEPTH = 32
PREFERENCES_LIMITS = JsonLimits(depth=JSON_MAX_DEPTH, bytes=8192, keys=256)
DEVICE_INFO_LIMITS = JsonLimits(depth=JSON_MAX_DEPTH, bytes=4096, keys=64)
_NUMBER_BOUND = 2**63
NUMBER_RULE = "must hold numbers between -2^63 and 2^63 only"


def json_object(value: Any, limits: JsonLimits) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidValue("must be a JSON object")
    check_json(value, limits)
    return value


def _string_bytes(value: str, budget: int) -> int:
    """The size of ``value`` as a JSON string; a huge one is measured by its length alone."""
    if "\x00" in value:
        raise InvalidValue("must not contain NUL characters")
    if len(value) > budget:  # at least one byte per character
        return len(value)
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # a lone surrogate: not Unicode text
        raise InvalidValue("must contain valid Unicode text only") from None


def check_json(value: Any, limits: JsonLimits) -> None:
    """Raise :class:`InvalidValue` unless ``value`` is plain JSON within ``limits``."""
    budget = limits.bytes
    keys = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            depth += 1
            if depth > limits.depth:
                raise InvalidValue(f"must be nested at most {limits.depth} levels deep")
            budget -= len(node) + 1  # brackets and separators
            if isinstance(node, dict):
                keys += len(node)
                if keys > limits.keys:
                    raise InvalidValue(f"must have at most {limits.keys} keys")
                for key, item in node.items():
                    if not isinstance(key, str):
                        raise InvalidValue("must have string keys")
                    budget -= _string_bytes(key, budget) + 1  # and its colon
                    stack.append((item, depth))
            elif budget >= 0:
                stack.extend((item, depth) for item in node)
        elif isinstance(node, str):
            budget -= _string_bytes(node, budget)
        elif node is None or isinstance(node, bool):
            budget -= 5
        elif isinstance(node, int | float):
            # JSONB keeps numbers as decimals: 1e30 comes back as a 31-digit integer, which
            # orjson cannot write. So every number stays within what a 64-bit integer holds.
            if not -_NUMBER_BOUND < node < _NUMBER_BOUND:  # also refuses NaN and infinities
                raise InvalidValue(NUMBER_RULE)
            budget -= len(repr(node))
        else:
            raise InvalidValue("must be plain JSON")
        if budget < 0:
            raise InvalidValue(f"must be at most {limits.bytes} bytes of JSON")
