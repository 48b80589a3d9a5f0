"""A Clerk-like issuer for tests: test RSA keys, their JWKS served over real HTTP on loopback, and
session tokens minted the way Clerk's `getToken()` shapes them (v2 claims, `o` for the organization)."""

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

FRONT_END = "https://app.example.com"


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ClerkIssuer:
    """Serves `/.well-known/jwks.json` for its published keys and counts the fetches."""

    def __init__(self):
        self.keys = {}
        self.published = []
        self.fetches = 0
        self.down = False
        self._lock = threading.Lock()
        self.kid = self.add_key()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                if self.path != "/.well-known/jwks.json" or issuer.down:
                    self.send_error(404 if not issuer.down else 503)
                    return
                with issuer._lock:
                    issuer.fetches += 1
                    body = json.dumps({"keys": [issuer.jwk(kid) for kid in issuer.published]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add_key(self, publish=True):
        """Make a new RSA key; return its kid (published in the JWKS unless told otherwise)."""
        kid = f"ins_{uuid.uuid4().hex[:12]}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            with self._lock:
                self.published.append(kid)
        return kid

    def jwk(self, kid):
        out = json.loads(RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
        return {**out, "kid": kid, "alg": "RS256", "use": "sig"}

    def public_pem(self, kid=None):
        return (
            self.keys[kid or self.kid]
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )

    def claims(self, org="org_a", role="admin", *, user="user_2abc", drop=(), **overrides):
        """Return v2 session-token claims; `org=None` leaves out the organization."""
        now = int(time.time())
        claims = {
            "azp": FRONT_END,
            "exp": now + 600,
            "fva": [0, -1],
            "iat": now,
            "iss": self.url,
            "jti": uuid.uuid4().hex[:20],
            "nbf": now - 10,
            "sid": "sess_2xyz",
            "sts": "active",
            "sub": user,
            "v": 2,
        }
        if org is not None:
            claims["o"] = {"id": org, "rol": role, "slg": "clinic", "per": "", "fpm": ""}
        claims.update(overrides)
        for name in drop:
            claims.pop(name, None)
        return claims

    def mint(self, org="org_a", role="admin", *, kid=None, **claims):
        """Return a signed RS256 session token (see `claims` for the arguments)."""
        kid = kid or self.kid
        return jwt.encode(
            self.claims(org, role, **claims), self.keys[kid], algorithm="RS256", headers={"kid": kid}
        )

    def forge(self, alg, org="org_a", **claims):
        """Return a token with `alg` "none" or "HS256" keyed with the public key (both must be refused)."""
        header = _b64(json.dumps({"alg": alg, "typ": "JWT", "kid": self.kid}).encode())
        payload = _b64(json.dumps(self.claims(org, **claims)).encode())
        signing_input = f"{header}.{payload}".encode()
        if alg == "none":
            return f"{header}.{payload}."
        signature = hmac.new(self.public_pem(), signing_input, hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    def settings(self, **extra):
        """Return the app settings that trust this issuer."""
        return {
            "CLERK_ISSUER": self.url,
            "CLERK_AUTHORIZED_PARTIES": [FRONT_END],
            "CORS_ORIGINS": [FRONT_END],
            **extra,
        }


def serve_issuer():
    """Yield a running ClerkIssuer (for fixtures)."""
    with ClerkIssuer() as issuer:
        yield issuer
