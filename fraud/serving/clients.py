"""Who is calling, for rate limits: the one rule of the scoring API and the review app.

The client address is the socket peer. Only when the peer is a proxy named in FRAUD_TRUSTED_PROXIES (CIDRs,
e.g. `["10.0.0.0/8"]`; none by default) does X-Forwarded-For count, and then its rightmost hop that is not itself
a trusted proxy: every hop to its left was written by the caller and could be anything. Both servers run uvicorn
with its own proxy-header handling off, so no header changes the peer behind this function's back."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """FRAUD_TRUSTED_PROXIES parsed; a bad entry raises ValueError naming it (at start-up, not per request)."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError as error:
            raise ValueError(f"FRAUD_TRUSTED_PROXIES: {cidr!r} is not an address or CIDR ({error})") from None
    return tuple(networks)


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(connection: HTTPConnection, networks: Sequence[Network] = ()) -> str:
    """The address to rate-limit `connection` by (see the module docstring)."""
    peer = connection.client.host if connection.client else "unknown"
    if not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for value in connection.headers.getlist("x-forwarded-for") for hop in value.split(",")]
    hops = [hop for hop in hops if hop]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer  # every hop a trusted proxy: the first one is where the request began
