"""JWT bearer tokens from an identity provider: HS256 with a shared secret, or keys from a JWKS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from shipboard.config import Settings
from shipboard.core.errors import Unauthorized

ASYMMETRIC = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
# Deployments recorded from webhooks are triggered by "github:<login>" / "gitlab:<username>";
# a token whose subject sat in those namespaces would act as their triggerer.
RESERVED_PREFIXES = ("github:", "gitlab:")


@dataclass(frozen=True)
class JwtClaims:
    subject: str
    role: str


class JwtVerifier:
    def __init__(self, settings: Settings) -> None:
        self.secret = settings.jwt_secret
        self.jwks = jwt.PyJWKClient(settings.jwt_jwks_url) if settings.jwt_jwks_url else None
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience

    @property
    def enabled(self) -> bool:
        return bool(self.secret or self.jwks)

    def verify(self, token: str) -> JwtClaims:
        # The accepted algorithms are fixed by configuration, never taken from the token's
        # header, so "alg": "none" and HS/RS confusion are refused.
        try:
            key: Any
            if self.secret:
                key, algorithms = self.secret, ["HS256"]
            elif self.jwks:
                key, algorithms = self.jwks.get_signing_key_from_jwt(token).key, ASYMMETRIC
            else:
                raise Unauthorized()
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token has expired") from exc
        except (jwt.PyJWTError, ValueError) as exc:
            raise Unauthorized("invalid token") from exc
        subject, role = claims.get("sub"), claims.get("role")
        if not isinstance(subject, str) or not subject or not isinstance(role, str):
            raise Unauthorized("token lacks a subject or a role")
        if subject.lower().startswith(RESERVED_PREFIXES):
            raise Unauthorized("token's subject is in a namespace reserved for webhooks")
        return JwtClaims(subject=subject, role=role)
