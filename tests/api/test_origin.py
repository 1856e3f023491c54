"""The client's address behind trusted reverse proxies, named by address or by network (an ingress
controller's pods change address, their network does not)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from socle.api.origin import forwarded_client, trusted_proxies
from socle.settings import Settings


def test_a_trusted_network_covers_every_proxy_in_it() -> None:
    trusted = trusted_proxies("10.42.0.0/16, 127.0.0.1, ::1")
    assert "10.42.7.9" in trusted and "127.0.0.1" in trusted and "::1" in trusted
    assert "10.43.0.1" not in trusted and "not an address" not in trusted
    # Two ingress pods of the network added the last two hops; the client made up the first.
    assert forwarded_client("10.42.7.9", ["198.51.100.1, 203.0.113.7, 10.42.3.3"], trusted) == "203.0.113.7"
    # A peer outside the network is the client, whatever it claims.
    assert forwarded_client("192.0.2.10", ["203.0.113.7"], trusted) == "192.0.2.10"
    assert "127.0.0.1" not in trusted_proxies("")


def test_a_setting_that_is_not_an_address_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="ui_trusted_proxies"):
        Settings(ui_trusted_proxies="10.42.0.0/16, ingress-nginx")
    assert Settings(ui_trusted_proxies="10.42.0.0/16, fd00::/8").ui_trusted_proxies
