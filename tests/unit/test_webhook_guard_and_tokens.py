"""Where webhooks may point, how deliveries are signed, and what a consistency token accepts."""

import hashlib
import hmac
import ipaddress
import socket

import pytest

from shared.errors import InvalidRequest
from shared.ledger.consistency import make_token, read_token
from shared.settings import Settings
from shared.webhooks.delivery import sign
from shared.webhooks.guard import ForbiddenDestination, check_destination, check_url


def test_loopback_is_allowed_by_default_and_refused_once_dropped() -> None:
    local = Settings()
    check_url("http://127.0.0.1:8080/hook", local)
    check_destination("http://localhost:8080/hook", local)  # resolves to loopback
    strict = Settings(webhook_allowed_networks=[])
    for url in ("http://127.0.0.1/hook", "http://localhost/hook", "http://[::1]/hook"):
        with pytest.raises(ForbiddenDestination):
            check_url(url, strict)
    # A name (not an address) checked by what it resolves to: this machine's own name is a
    # loopback or private address here.
    name = socket.gethostname()
    addresses = {info[4][0] for info in socket.getaddrinfo(name, 80)}
    if any(ipaddress.ip_address(str(a).split("%")[0]).is_global for a in addresses):
        pytest.skip(f"{name} resolves to a public address here")
    with pytest.raises(ForbiddenDestination):
        check_destination(f"http://{name}/hook", strict)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/",
        "http://0.0.0.0/",
        "gopher://example.com/",
    ],
)
def test_private_link_local_reserved_and_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ForbiddenDestination):
        check_url(url, Settings())


def test_an_allow_list_of_hosts_admits_only_those() -> None:
    settings = Settings(webhook_allowed_hosts=["hooks.example.com"])
    check_url("https://hooks.example.com/coursewise", settings)
    with pytest.raises(ForbiddenDestination):
        check_url("https://evil.example.com/", settings)


def test_a_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"event":"task.succeeded"}'
    expected = hmac.new(b"s3cret-s3cret-s3cret", b"1700000000." + body, hashlib.sha256)
    assert (
        sign("s3cret-s3cret-s3cret", 1700000000, body) == f"t=1700000000,v1={expected.hexdigest()}"
    )


def test_a_token_reads_back_only_with_its_key_and_unaltered() -> None:
    token = make_token(b"key-one", 42)
    assert read_token(b"key-one", token) == 42
    for bad, code in [
        (make_token(b"key-two", 42), "foreign_token"),
        (token.replace("ct1.42.", "ct1.43."), "foreign_token"),
        ("ct1.42", "malformed_token"),
        ("", "malformed_token"),
        ("ct1.-1.x", "malformed_token"),
    ]:
        with pytest.raises(InvalidRequest) as refused:
            read_token(b"key-one", bad)
        assert refused.value.details[0].code == code
        assert refused.value.details[0].loc == ["query", "consistency"]
