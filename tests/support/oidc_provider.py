"""A local OpenID Connect provider shaped like ProConnect: a peer of the platform in the sign-in tests.

It serves what a real provider does, and checks what a real one checks:
  /.well-known/openid-configuration   discovery (issuer http://127.0.0.1:PORT)
  /jwks                                its public signing key (RS256)
  /authorize                           auto-approves the configured test user: checks client, redirect URI,
                                       scope, state, nonce and the PKCE challenge, then sends the browser back
  /token                               client authentication (client_secret_post, or basic with
                                       ``--basic``), single-use code, same redirect URI, PKCE verifier; issues
                                       an RS256 ID token (built with joserfc, authlib's JOSE library)
  /userinfo                            the user's claims as a signed JWT (application/jwt), as ProConnect does
  /session/end                         ends the provider's session (checks the id_token_hint), then back to
                                       the post_logout_redirect_uri
The test drives it through ``POST /test/user`` (who signs in next, and what to tamper with: ``state``,
``nonce``, ``signature``) and reads what happened at ``GET /test/log``.

    python -m tests.support.oidc_provider --port 19100 --client-id socle --client-secret s3cret
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

KEY = RSAKey.generate_key(2048, parameters={"kid": "socle-test-1", "use": "sig", "alg": "RS256"}, private=True)
ROGUE = RSAKey.generate_key(2048, parameters={"kid": "socle-test-1", "use": "sig", "alg": "RS256"}, private=True)
CONFIG: dict[str, Any] = {"issuer": "", "client_id": "", "client_secret": "", "basic": False}
USER: dict[str, Any] = {"email": "agent@ministere.gouv.fr", "given_name": "Camille", "usual_name": "Agent",
                        "email_verified": None, "email_in_id_token": False, "tamper": None}
CODES: dict[str, dict[str, Any]] = {}
ACCESS: dict[str, dict[str, Any]] = {}
LOG: list[dict[str, Any]] = []
CALLBACK = "/ui/connexion/proconnect/retour"


def _error(message: str, status: int = 400) -> Response:
    LOG.append({"event": "refused", "reason": message})
    return PlainTextResponse(message, status_code=status)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def _subject(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()[:24]


def _sign(claims: dict[str, Any], *, key: RSAKey = KEY) -> str:
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


async def discovery(_: Request) -> Response:
    issuer = CONFIG["issuer"]
    return JSONResponse({
        "issuer": issuer, "authorization_endpoint": f"{issuer}/authorize", "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo", "jwks_uri": f"{issuer}/jwks",
        "end_session_endpoint": f"{issuer}/session/end", "response_types_supported": ["code"],
        "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"],
        "userinfo_signing_alg_values_supported": ["RS256"], "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "given_name", "usual_name"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic" if CONFIG["basic"] else "client_secret_post"]})


async def jwks(_: Request) -> Response:
    return JSONResponse({"keys": [KEY.as_dict(private=False)]})


async def authorize(request: Request) -> Response:
    q = request.query_params
    redirect_uri = q.get("redirect_uri", "")
    target = urlsplit(redirect_uri)
    if q.get("client_id") != CONFIG["client_id"]:
        return _error("unknown client_id")
    if target.scheme != "http" or target.hostname != "127.0.0.1" or target.path != CALLBACK:
        return _error(f"redirect_uri not registered: {redirect_uri}")
    if q.get("response_type") != "code" or "openid" not in q.get("scope", "").split():
        return _error("response_type=code and the openid scope are required")
    if len(q.get("state", "")) < 22 or len(q.get("nonce", "")) < 22:  # ProConnect's own minimum
        return _error("state and nonce of at least 22 characters are required")
    if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
        return _error("a PKCE S256 code_challenge is required")
    code = secrets.token_urlsafe(24)
    CODES[code] = {"redirect_uri": redirect_uri, "nonce": q["nonce"], "challenge": q["code_challenge"],
                   "user": dict(USER), "scope": q["scope"]}
    state = q["state"] if USER["tamper"] != "state" else secrets.token_urlsafe(32)
    LOG.append({"event": "authorize", "email": USER["email"], "scope": q["scope"]})
    return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", status_code=302)


def _client_authenticated(request: Request, form: Any) -> bool:
    if CONFIG["basic"]:
        header = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{CONFIG['client_id']}:{CONFIG['client_secret']}".encode()).decode()
        return secrets.compare_digest(header, f"Basic {expected}")
    return form.get("client_id") == CONFIG["client_id"] and secrets.compare_digest(
        str(form.get("client_secret", "")), CONFIG["client_secret"])


async def token(request: Request) -> Response:
    form = await request.form()
    if not _client_authenticated(request, form):
        return JSONResponse({"error": "invalid_client"}, status_code=401)
    grant = CODES.pop(str(form.get("code", "")), None)  # a code is used once
    if form.get("grant_type") != "authorization_code" or grant is None:
        return JSONResponse({"error": "invalid_grant"}, status_code=400)
    if form.get("redirect_uri") != grant["redirect_uri"]:
        return JSONResponse({"error": "invalid_grant", "error_description": "redirect_uri"}, status_code=400)
    if _s256(str(form.get("code_verifier", ""))) != grant["challenge"]:
        return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
    user, now = grant["user"], int(time.time())
    claims: dict[str, Any] = {"iss": CONFIG["issuer"], "sub": _subject(user["email"]), "aud": CONFIG["client_id"],
                              "exp": now + 60, "iat": now, "auth_time": now, "acr": "eidas1",
                              "amr": ["pwd"], "idp_id": "test-idp",
                              "nonce": grant["nonce"] if user["tamper"] != "nonce" else secrets.token_urlsafe(32)}
    if user["email_in_id_token"]:
        claims |= {"email": user["email"], "given_name": user["given_name"], "usual_name": user["usual_name"]}
        if user["email_verified"] is not None:
            claims["email_verified"] = user["email_verified"]
    access = secrets.token_urlsafe(24)
    ACCESS[access] = user
    id_token = _sign(claims, key=ROGUE if user["tamper"] == "signature" else KEY)
    LOG.append({"event": "token", "email": user["email"]})
    return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": 60, "id_token": id_token,
                         "scope": grant["scope"]})


async def userinfo(request: Request) -> Response:
    user = ACCESS.get(request.headers.get("authorization", "").removeprefix("Bearer "))
    if user is None:
        return JSONResponse({"error": "invalid_token"}, status_code=401)
    claims: dict[str, Any] = {"iss": CONFIG["issuer"], "aud": CONFIG["client_id"], "sub": _subject(user["email"]),
                              "email": user["email"], "given_name": user["given_name"],
                              "usual_name": user["usual_name"]}
    if user["email_verified"] is not None:
        claims["email_verified"] = user["email_verified"]
    LOG.append({"event": "userinfo", "email": user["email"]})
    return Response(_sign(claims), media_type="application/jwt")


async def end_session(request: Request) -> Response:
    q = request.query_params
    try:
        hint = jwt.decode(q.get("id_token_hint", ""), KEY, algorithms=["RS256"])
    except (JoseError, ValueError):
        return _error("id_token_hint is not one of this provider's ID tokens")
    if not q.get("state") or urlsplit(q.get("post_logout_redirect_uri", "")).hostname != "127.0.0.1":
        return _error("state and a registered post_logout_redirect_uri are required")
    LOG.append({"event": "logout", "sub": hint.claims["sub"]})
    return RedirectResponse(f"{q['post_logout_redirect_uri']}?{urlencode({'state': q['state']})}", status_code=302)


async def set_user(request: Request) -> Response:
    USER.update({"email_verified": None, "email_in_id_token": False, "tamper": None, **await request.json()})
    return JSONResponse(USER)


async def log(_: Request) -> Response:
    return JSONResponse(LOG)


app = Starlette(routes=[
    Route("/.well-known/openid-configuration", discovery), Route("/jwks", jwks), Route("/authorize", authorize),
    Route("/token", token, methods=["POST"]), Route("/userinfo", userinfo), Route("/session/end", end_session),
    Route("/test/user", set_user, methods=["POST"]), Route("/test/log", log),
])

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--basic", action="store_true", help="client_secret_basic instead of client_secret_post")
    args = parser.parse_args()
    CONFIG.update(issuer=f"http://127.0.0.1:{args.port}", client_id=args.client_id,
                  client_secret=args.client_secret, basic=args.basic)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
