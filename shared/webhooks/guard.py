"""Where webhooks may point (server-side request forgery): http(s) only, never a redirect, and
every address the host resolves to either public or inside an allowed network. Checked when an
endpoint is registered (the URL, and a literal address or `localhost`) and again before every
delivery, on the addresses the host resolves to then (a name may change what it points at).

What remains: a name re-resolved between our check and the connection (DNS rebinding within
one delivery); an allow list of host names (`webhook_allowed_hosts`) closes that in production.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

from shared.errors import ErrorDetail, InvalidRequest
from shared.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCATION: list[str | int] = ["body", "url"]


class ForbiddenDestination(InvalidRequest):
    def __init__(self, why: str) -> None:
        super().__init__(
            f"This webhook destination is not allowed: {why}.",
            [ErrorDetail(LOCATION, "forbidden_destination", why)],
        )


def _malformed(why: str) -> InvalidRequest:
    return InvalidRequest(
        f"The webhook URL is malformed: {why}.", [ErrorDetail(LOCATION, "malformed_url", why)]
    )


def parse(url: str) -> tuple[str, int]:
    """(host, port) of an http(s) URL; 422 for anything else."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _malformed(str(exc)) from None
    if parts.scheme not in ("http", "https"):
        raise ForbiddenDestination(f"scheme {parts.scheme or '(none)'!r}; only http and https")
    if not parts.hostname:
        raise _malformed("no host")
    if parts.username or parts.password:
        raise _malformed("credentials in the URL; sign with the secret instead")
    if any(ch.isspace() for ch in url):
        raise _malformed("white space")
    return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)


def _allowed_address(address: Address, settings: Settings) -> bool:
    for network in settings.webhook_allowed_networks:
        if address in ipaddress.ip_network(network, strict=False):
            return True
    return address.is_global


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def check_url(url: str, settings: Settings) -> None:
    """At registration: the URL, the allow list of hosts, and a host that names an address
    without a lookup (a literal address, `localhost`)."""
    host, _ = parse(url)
    if settings.webhook_allowed_hosts and host not in settings.webhook_allowed_hosts:
        raise ForbiddenDestination(f"host {host!r} is not in the allow list")
    literal = _literal(host)
    if host == "localhost" or host.endswith(".localhost"):
        literal = ipaddress.ip_address("127.0.0.1")
    if literal is not None and not _allowed_address(literal, settings):
        raise ForbiddenDestination(f"address {literal} is private, loopback or reserved")


def check_destination(url: str, settings: Settings) -> None:
    """Before a delivery: everything `check_url` checks, and every address the host resolves
    to now. Raises ForbiddenDestination (or OSError when the name does not resolve)."""
    check_url(url, settings)
    host, port = parse(url)
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not _allowed_address(address, settings):
            raise ForbiddenDestination(f"{host} resolves to {address}, which is not allowed")
