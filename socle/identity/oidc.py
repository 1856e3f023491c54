"""Signing in through ProConnect, the State's OpenID Connect federation (or any OpenID provider).

Authorization-code flow with PKCE (S256), ``state`` and ``nonce``. Between the two legs the browser keeps the
:class:`Attempt` (the HTTP layer's business); here, the provider's address is built, the code exchanged and
the ID token verified: signed with a key of the provider's JWKS (from its discovery document), by the
expected issuer, for this client, not expired, carrying this attempt's nonce. The protocol parts are
authlib's, the signatures joserfc's (authlib's own JOSE library), the transport httpx.

The person's e-mail address comes from the ID token or, as with ProConnect, from the userinfo endpoint (a
JSON object or, signed, a JWT). The account it names is found by :meth:`IdentityService.sign_in_federated`.
Errors are :class:`Unauthenticated` with a ``code`` saying which check failed (``oidc_*``).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import ClaimError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from socle.errors import BackendUnavailable, Unauthenticated
from socle.identity.names import canonical_email
from socle.inference.sealing import SealingUnavailable, SecretBox

log = logging.getLogger("socle.identity")

_ALGORITHMS = ("RS256", "PS256", "ES256", "RS384", "PS384", "ES384", "RS512", "PS512", "ES512")  # never HS*, none
_METADATA_TTL_S = 3600.0
_RETRY_AFTER_FAILURE_S = 30.0  # a provider that could not be reached is not asked again at every page
_JWKS_REFRESH_S = 60.0  # an unknown key id refetches the keys (rotation), at most this often
_LEEWAY_S = 60  # clock skew tolerated on exp, iat, nbf


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    end_session_endpoint: str | None
    token_auth_methods: tuple[str, ...]
    algorithms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Attempt:
    """What the browser keeps between leaving for the provider and coming back: only it can finish."""

    state: str
    nonce: str
    code_verifier: str

    @classmethod
    def new(cls) -> Attempt:
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48))


@dataclass(frozen=True, slots=True)
class FederatedIdentity:
    subject: str
    email: str  # vouched for: not marked unverified (nor unmarked, when verification is required)
    name: str
    id_token: str


def _refused(message: str, code: str) -> Unauthenticated:
    return Unauthenticated(message, code=code)


class OidcClient:
    def __init__(self, *, issuer: str, client_id: str, client_secret: str, scopes: str,
                 require_email_verified: bool = False, timeout_s: float = 10.0) -> None:
        self.issuer = issuer
        self.require_email_verified = require_email_verified
        self.client_id = client_id
        self._secret = client_secret
        self.scopes = scopes
        self._timeout = httpx.Timeout(timeout_s)
        self._metadata: ProviderMetadata | None = None
        self._metadata_until = 0.0
        self._failed_until = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    # ---- the provider's documents ----------------------------------------------------------------

    async def metadata(self) -> ProviderMetadata:
        """The discovery document, kept an hour; :class:`BackendUnavailable` when the provider is out of reach."""
        now = time.monotonic()
        if self._metadata is not None and now < self._metadata_until:
            return self._metadata
        async with self._lock:
            if self._metadata is not None and time.monotonic() < self._metadata_until:
                return self._metadata
            if time.monotonic() < self._failed_until:
                raise BackendUnavailable("The identity provider could not be reached.", code="oidc_unavailable")
            try:
                document = await self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
                self._metadata = _parse_metadata(document, self.issuer)
            except BackendUnavailable:
                self._failed_until = time.monotonic() + _RETRY_AFTER_FAILURE_S
                raise
            self._metadata_until = time.monotonic() + _METADATA_TTL_S
            self._keys = None
            return self._metadata

    def origins(self) -> set[str]:
        """Where the browser is sent (sign-in, sign-out): the pages' policy must let forms lead there."""
        urls = [self.issuer]
        if self._metadata is not None:
            urls += [self._metadata.authorization_endpoint, self._metadata.end_session_endpoint or self.issuer]
        return {_origin(url) for url in urls}

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        metadata = await self.metadata()
        if self._keys is None or (refresh and time.monotonic() - self._keys_at > _JWKS_REFRESH_S):
            try:
                self._keys = KeySet.import_key_set(await self._get_json(metadata.jwks_uri))  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError) as exc:
                raise BackendUnavailable("The identity provider's keys are unusable.",
                                         code="oidc_unavailable") from exc
            self._keys_at = time.monotonic()
        return self._keys

    # ---- the two legs ------------------------------------------------------------------------------

    async def authorization_url(self, attempt: Attempt, redirect_uri: str) -> str:
        metadata = await self.metadata()
        return str(prepare_grant_uri(
            metadata.authorization_endpoint, client_id=self.client_id, response_type="code",
            redirect_uri=redirect_uri, scope=self.scopes, state=attempt.state, nonce=attempt.nonce,
            code_challenge=create_s256_code_challenge(attempt.code_verifier), code_challenge_method="S256"))

    async def identify(self, attempt: Attempt, params: Mapping[str, str], redirect_uri: str) -> FederatedIdentity:
        """The person the provider vouches for, from the parameters it sent the browser back with."""
        if params.get("error"):
            code = "oidc_denied" if params["error"] == "access_denied" else "oidc_provider_error"
            raise _refused(f"The identity provider answered {params['error']!r}.", code)
        if not secrets.compare_digest(params.get("state", "").encode(), attempt.state.encode()):
            raise _refused("The state does not match this browser's sign-in.", "oidc_state_mismatch")
        if not params.get("code"):
            raise _refused("The identity provider sent no code.", "oidc_provider_error")
        tokens = await self._exchange(params["code"], attempt, redirect_uri)
        id_token, access_token = tokens.get("id_token"), tokens.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            raise _refused("The token endpoint sent no ID token.", "oidc_provider_error")
        claims = await self._verified_id_token(id_token, attempt.nonce, access_token)
        if "email" not in claims and (await self.metadata()).userinfo_endpoint:
            claims = {**await self._userinfo(access_token, claims["sub"]), **claims}
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise _refused("The identity provider gave no e-mail address.", "oidc_no_email")
        verified = claims.get("email_verified")
        if verified is False or verified == "false" or (self.require_email_verified and verified is not True):
            raise _refused("The identity provider does not vouch for this e-mail address.", "oidc_email_unverified")
        name = " ".join(str(claims[k]) for k in ("given_name", "usual_name", "family_name")
                        if isinstance(claims.get(k), str) and claims[k]) or str(claims.get("name") or "")
        return FederatedIdentity(subject=claims["sub"], email=canonical_email(email), name=name[:200],
                                 id_token=id_token)

    async def end_session_url(self, id_token: str, post_logout_redirect_uri: str) -> str | None:
        """Where to send the browser so that the provider's session ends too; None if it offers no such thing."""
        metadata = await self.metadata()
        if not metadata.end_session_endpoint:
            return None
        return str(add_params_to_uri(metadata.end_session_endpoint, [
            ("id_token_hint", id_token), ("state", secrets.token_urlsafe(32)),
            ("post_logout_redirect_uri", post_logout_redirect_uri)]))

    # ---- steps -------------------------------------------------------------------------------------

    async def _exchange(self, code: str, attempt: Attempt, redirect_uri: str) -> dict[str, Any]:
        metadata = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": attempt.code_verifier}
        auth: httpx.BasicAuth | None = None
        if "client_secret_basic" in metadata.token_auth_methods:  # RFC 6749 2.3.1: each part form-encoded
            auth = httpx.BasicAuth(*(urllib.parse.quote_plus(part) for part in (self.client_id, self._secret)))
        else:  # RFC 6749 2.3.1: the form-encoded client id and secret, when the provider only takes them so
            form |= {"client_id": self.client_id, "client_secret": self._secret}
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.post(metadata.token_endpoint, data=form, auth=auth,
                                           headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            raise BackendUnavailable("The identity provider's token endpoint could not be reached.",
                                     code="oidc_unavailable") from exc
        if response.status_code != 200:
            raise _refused(f"The token endpoint refused the code ({response.status_code}).", "oidc_provider_error")
        try:
            tokens = response.json()
        except ValueError as exc:
            raise _refused("The token endpoint's answer is not JSON.", "oidc_provider_error") from exc
        if not isinstance(tokens, dict):
            raise _refused("The token endpoint's answer is not an object.", "oidc_provider_error")
        return tokens

    async def _decode(self, token: str) -> jwt.Token:
        """A JWT signed by one of the provider's keys (fetched again once if its key id is unknown: rotation)."""
        algorithms = [a for a in (await self.metadata()).algorithms if a in _ALGORITHMS]
        for refresh in (False, True):
            try:
                return jwt.decode(token, await self._key_set(refresh=refresh), algorithms=algorithms)
            except InvalidKeyIdError:
                if refresh:
                    break
            except (JoseError, ValueError) as exc:
                raise _refused(f"The token's signature does not verify: {exc}", "oidc_invalid_token") from exc
        raise _refused("The token is signed by a key the provider does not publish.", "oidc_invalid_token")

    async def _verified_id_token(self, id_token: str, nonce: str, access_token: str) -> dict[str, Any]:
        token = await self._decode(id_token)
        metadata = await self.metadata()
        claims = CodeIDToken(token.claims, token.header, options={
            "iss": {"essential": True, "value": metadata.issuer},
            "aud": {"essential": True, "value": self.client_id}},
            params={"nonce": nonce, "client_id": self.client_id, "access_token": access_token})
        try:
            claims.validate(leeway=_LEEWAY_S)
        except ClaimError as exc:
            code = "oidc_nonce_mismatch" if exc.claim == "nonce" else "oidc_invalid_token"
            raise _refused(f"The ID token is not valid: {exc}", code) from exc
        if not isinstance(claims.get("sub"), str):
            raise _refused("The ID token names no subject.", "oidc_invalid_token")
        return dict(claims)

    async def _userinfo(self, access_token: str, subject: str) -> dict[str, Any]:
        """OpenID Connect Core 5.3: JSON, or a JWT signed like the ID token; about the same subject."""
        url = (await self.metadata()).userinfo_endpoint
        assert url is not None
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.get(url, headers={"authorization": f"Bearer {access_token}"})
        except httpx.HTTPError as exc:
            raise BackendUnavailable("The identity provider's userinfo endpoint could not be reached.",
                                     code="oidc_unavailable") from exc
        if response.status_code != 200:
            raise _refused(f"The userinfo endpoint refused ({response.status_code}).", "oidc_provider_error")
        if response.headers.get("content-type", "").split(";")[0].strip() == "application/jwt":
            token = await self._decode(response.text.strip())
            claims: Any = token.claims
            if claims.get("iss", self.issuer) != (await self.metadata()).issuer or (
                    "aud" in claims and self.client_id not in _as_list(claims["aud"])):
                raise _refused("The userinfo token is not for this client.", "oidc_invalid_token")
        else:
            try:
                claims = response.json()
            except ValueError as exc:
                raise _refused("The userinfo answer is not JSON.", "oidc_provider_error") from exc
        if not isinstance(claims, dict) or claims.get("sub") != subject:
            raise _refused("The userinfo answer is about someone else.", "oidc_invalid_token")
        return claims

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as http:
                response = await http.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendUnavailable(f"The identity provider could not be reached ({url}): {exc}",
                                     code="oidc_unavailable") from exc
        if not isinstance(document, dict):
            raise BackendUnavailable(f"{url} is not a JSON object.", code="oidc_unavailable")
        return document


@dataclass(frozen=True, slots=True)
class ProviderChoice:
    """ProConnect as the site's settings name it: its issuer, this platform's client id, and the client secret
    sealed (:class:`~socle.inference.sealing.SecretBox`), or "" for the environment's."""

    issuer: str
    client_id: str
    sealed_secret: str


class Federation:
    """The identity provider to use now: the site's settings choose it (stored in the database, the environment's
    ``SOCLE_OIDC_*`` as their defaults), so every process follows an administrator's change within the settings'
    refresh delay. The client is kept while the choice stays the same: its provider's documents stay cached."""

    def __init__(self, box: SecretBox, *, environment_secret: str, scopes: str, timeout_s: float,
                 require_email_verified: bool) -> None:
        self._box = box
        self._environment_secret = environment_secret
        self._scopes = scopes
        self._timeout_s = timeout_s
        self._require_email_verified = require_email_verified
        self._kept: tuple[ProviderChoice, OidcClient] | None = None

    def client(self, choice: ProviderChoice | None) -> OidcClient | None:
        """The client for ``choice`` (None: ProConnect is off). A secret that cannot be opened (the keys
        changed) turns it off, logged, rather than failing every page."""
        if choice is None:
            return None
        if self._kept is not None and self._kept[0] == choice:
            return self._kept[1]
        try:
            secret = self._box.open(choice.sealed_secret) if choice.sealed_secret else self._environment_secret
        except SealingUnavailable as exc:
            log.error("ProConnect is off: its client secret cannot be opened (%s)", exc)
            return None
        if not (choice.issuer and choice.client_id and secret):
            return None
        client = OidcClient(issuer=choice.issuer, client_id=choice.client_id, client_secret=secret,
                            scopes=self._scopes, timeout_s=self._timeout_s,
                            require_email_verified=self._require_email_verified)
        self._kept = (choice, client)
        return client


def _parse_metadata(document: dict[str, Any], issuer: str) -> ProviderMetadata:
    """OpenID Connect Discovery 4.3: the document is about the configured issuer, and has what the flow needs."""
    if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise BackendUnavailable(f"The discovery document is about {document.get('issuer')!r}, not {issuer!r}.",
                                 code="oidc_unavailable")
    required = ("authorization_endpoint", "token_endpoint", "jwks_uri")
    if any(not isinstance(document.get(name), str) for name in required):
        raise BackendUnavailable(f"The discovery document lacks one of {', '.join(required)}.",
                                 code="oidc_unavailable")
    return ProviderMetadata(
        issuer=document["issuer"], authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"], jwks_uri=document["jwks_uri"],
        userinfo_endpoint=document.get("userinfo_endpoint"), end_session_endpoint=document.get("end_session_endpoint"),
        token_auth_methods=tuple(document.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]),
        algorithms=tuple(document.get("id_token_signing_alg_values_supported") or ["RS256"]))


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
