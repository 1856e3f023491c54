"""Where each request comes from: the client's address behind the trusted reverse proxies, and the face it
reached (API or UI), made known to the audit trail for the length of the request."""
from __future__ import annotations

import functools
import ipaddress

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from socle.audit.context import Origin, current_origin


class TrustedProxies:
    """``SOCLE_UI_TRUSTED_PROXIES``: comma-separated addresses or networks (``10.42.0.0/16``: an ingress
    controller's pods change address, their network does not)."""

    def __init__(self, setting: str) -> None:
        parts = [part.strip() for part in setting.split(",") if part.strip()]
        self._networks = tuple(ipaddress.ip_network(part, strict=False) for part in parts)  # checked by Settings

    def __contains__(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)


@functools.lru_cache(maxsize=8)
def trusted_proxies(setting: str) -> TrustedProxies:
    return TrustedProxies(setting)


def forwarded_client(peer: str, forwarded_for: list[str], trusted: TrustedProxies) -> str:
    """The connection's address, or, when it is a trusted proxy, the last X-Forwarded-For address that the
    trusted proxies did not add (the ones before it are the client's to make up)."""
    if peer not in trusted:
        return peer
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        if hop not in trusted:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:  # not an address (a proxy's "unknown"): still this client's own entry
                return hop[:64]
    return peer


class RequestOrigin:
    """Sets :data:`socle.audit.context.current_origin` for every HTTP request."""

    def __init__(self, app: ASGIApp, *, trusted: str = "") -> None:
        self.app = app
        self.trusted = trusted_proxies(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        forwarded = Headers(scope=scope).getlist("x-forwarded-for")
        address = forwarded_client(client[0] if client else "", forwarded, self.trusted)
        path: str = scope.get("path", "")
        token = current_origin.set(Origin(address or None, "ui" if path.startswith("/ui") else "api"))
        try:
            await self.app(scope, receive, send)
        finally:
            current_origin.reset(token)
