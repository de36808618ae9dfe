"""A stand-in Supabase project for the tests: its own RSA and EC key pairs, the JWKS
served over HTTP at <url>/auth/v1/.well-known/jwks.json (a tiny local server), and
access tokens minted the way Supabase mints them, good or deliberately bad."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "authenticated"
HS_SECRET = "legacy-jwt-secret-" + "x" * 40


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _new_key(kind: str):
    if kind == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


class FakeSupabase:
    """Start with ``with FakeSupabase() as project:``; ``project.url`` is the project URL."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[Any, str]] = {}  # kid -> (private key, alg)
        self.published: list[str] = []
        self.fetches = 0
        self.add_key("rsa-1", "RS256")
        self.add_key("ec-1", "ES256")
        project = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path != "/auth/v1/.well-known/jwks.json":
                    self.send_error(404)
                    return
                project.fetches += 1
                body = json.dumps(project.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = f"{self.url}/auth/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSupabase:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_key(self, kid: str, alg: str, *, publish: bool = True) -> None:
        self.keys[kid] = (_new_key(alg), alg)
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict:
        found = []
        for kid in self.published:
            key, alg = self.keys[kid]
            algorithm = RSAAlgorithm if alg == "RS256" else ECAlgorithm
            jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
            found.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        return {"keys": found}

    def public_pem(self, kid: str) -> bytes:
        return self.keys[kid][0].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def claims(self, *, sub: str | None = None, email: str | None = None, audience: str = AUDIENCE,
               issuer: str | None = None, expires_in: float = 3600, **extra: Any) -> dict[str, Any]:
        now = int(time.time())
        sub = sub or str(uuid.uuid4())
        return {"sub": sub, "aud": audience, "iss": issuer or self.issuer, "iat": now, "exp": now + int(expires_in),
                "email": email if email is not None else f"{sub[:8]}@supabase.example.com", "role": "authenticated",
                "app_metadata": {"provider": "email", "providers": ["email"]}, "user_metadata": {},
                "is_anonymous": False, **extra}

    def token(self, kid: str = "rsa-1", **claims: Any) -> str:
        """An access token signed by one of the project's keys."""
        key, alg = self.keys[kid]
        return jwt.encode(self.claims(**claims), key, algorithm=alg, headers={"kid": kid})

    def hs_token(self, secret: str | bytes = HS_SECRET, **claims: Any) -> str:
        """An HS256 token (legacy projects), made by hand so any secret, a PEM public key too, can sign it."""
        return self.raw_token({"alg": "HS256", "typ": "JWT"}, self.claims(**claims), secret)

    def raw_token(self, header: dict, claims: dict, secret: str | bytes | None) -> str:
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        if secret is None:  # alg: none
            return signing_input + "."
        secret = secret.encode() if isinstance(secret, str) else secret
        return signing_input + "." + _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
