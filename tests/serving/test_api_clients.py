"""The client address the API's and the review app's rate limits key on (fraud/serving/clients.py): the socket peer,
whatever X-Forwarded-For says, unless the peer is a trusted proxy; then the rightmost hop that is not one."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from fraud.serving.clients import client_address, trusted_networks

PROXIES = trusted_networks(["10.0.0.0/8", "fd00::/8"])


def _request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 40000), "headers": headers, "method": "GET", "path": "/"})


@pytest.mark.parametrize("forwarded", [(), ("203.0.113.9",), ("1.2.3.4, 5.6.7.8",), ("10.0.0.1",), ("x", "y")])
def test_without_trusted_proxies_the_peer_is_the_client(forwarded):
    assert client_address(_request("198.51.100.7", *forwarded)) == "198.51.100.7"
    # a peer that is not a trusted proxy: its header counts no more than anyone's
    assert client_address(_request("198.51.100.7", *forwarded), PROXIES) == "198.51.100.7"


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client():
    assert client_address(_request("10.0.0.5", "203.0.113.9"), PROXIES) == "203.0.113.9"
    # what the caller wrote to the left of the hop the proxy appended does not change the key
    assert client_address(_request("10.0.0.5", "6.6.6.6, 203.0.113.9"), PROXIES) == "203.0.113.9"
    assert client_address(_request("10.0.0.5", "6.6.6.6", "203.0.113.9"), PROXIES) == "203.0.113.9"
    # a chain of trusted proxies is skipped, from the right
    assert client_address(_request("10.0.0.5", "6.6.6.6, 203.0.113.9, 10.1.1.1"), PROXIES) == "203.0.113.9"
    assert client_address(_request("fd00::1", "2001:db8::7"), PROXIES) == "2001:db8::7"
    # no header, or nothing but trusted hops: the peer, or where the request began
    assert client_address(_request("10.0.0.5"), PROXIES) == "10.0.0.5"
    assert client_address(_request("10.0.0.5", "10.2.2.2, 10.3.3.3"), PROXIES) == "10.2.2.2"


def test_a_bad_trusted_proxy_entry_is_refused_at_start_up():
    with pytest.raises(ValueError, match="FRAUD_TRUSTED_PROXIES: 'ten-slash-eight'"):
        trusted_networks(["10.0.0.0/8", "ten-slash-eight"])
