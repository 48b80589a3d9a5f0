"""Clerk session tokens (RS256 JWTs from the front end's `getToken()`) as a second bearer credential.

Verified against the instance's JWKS; the token's active organization scopes it exactly like an
org-scoped API token, and its organization role maps to our role and scopes via CLERK_ROLE_MAP.
"""

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

import jwt
from flask import current_app
from sqlalchemy.exc import IntegrityError

from .config import ConfigError
from .errors import Forbidden, Unauthorized
from .extensions import db
from .models import (
    DEFAULT_SCOPES,
    ORG_ID_PATTERN,
    ROLES,
    SCOPES,
    ClerkUser,
    Organization,
    for_org,
    get_for_org,
    utcnow,
)

log = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
LEEWAY_SECONDS = 5
JWKS_TIMEOUT_SECONDS = 5
JWKS_LIFESPAN_SECONDS = 300
REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "sub"]
BASE_SCOPES = frozenset(DEFAULT_SCOPES)
KNOWN_SCOPES = SCOPES
SEEN_RESOLUTION = timedelta(minutes=1)
ENTRY = re.compile(r"^([A-Za-z0-9_:-]+)=([a-z]+)((?:\+[a-z:]+)*)$")
SUBJECT = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


@dataclass(frozen=True)
class RoleGrant:
    """What a Clerk organization role becomes here."""

    role: str
    scopes: frozenset


def parse_role_map(text):
    """Parse `admin=operator+patients:read,member=operator` into {clerk role: RoleGrant}."""
    grants = {}
    for entry in (e.strip() for e in text.split(",")):
        match = ENTRY.match(entry)
        if not match or match.group(2) not in ROLES:
            raise ConfigError(
                f"CLERK_ROLE_MAP entry {entry!r}: write clerk_role=our_role[+scope…] "
                f"with our_role one of {', '.join(ROLES)}"
            )
        extra = {s for s in match.group(3).split("+") if s}
        unknown = extra - set(KNOWN_SCOPES)
        if unknown:
            raise ConfigError(f"CLERK_ROLE_MAP entry {entry!r}: unknown scope {sorted(unknown)[0]!r}")
        grants[_bare_role(match.group(1))] = RoleGrant(match.group(2), BASE_SCOPES | extra)
    return grants


def _bare_role(role):
    # v1 tokens say `org:admin`, v2 tokens `admin`.
    return role.removeprefix("org:") if isinstance(role, str) else None


@dataclass(frozen=True)
class ClerkSettings:
    """Clerk settings, checked once at start-up."""

    issuer: str
    jwks_url: str
    authorized_parties: tuple
    audience: str | None
    role_map: dict
    cooldown: float

    @classmethod
    def from_config(cls, config):
        """Return the settings, or None when Clerk is off (neither CLERK_ISSUER nor CLERK_JWKS_URL)."""
        issuer, jwks_url = (config.get("CLERK_ISSUER") or "").rstrip("/"), config.get("CLERK_JWKS_URL") or ""
        if not issuer and not jwks_url:
            return None
        if not issuer:
            if not jwks_url.endswith(JWKS_PATH):
                raise ConfigError(f"CLERK_ISSUER is needed when CLERK_JWKS_URL does not end in {JWKS_PATH}")
            issuer = jwks_url.removesuffix(JWKS_PATH)
        parties = tuple(p.rstrip("/") for p in config.get("CLERK_AUTHORIZED_PARTIES") or ())
        if not parties:
            raise ConfigError("CLERK_AUTHORIZED_PARTIES must list the front end origins (azp) to accept")
        return cls(
            issuer=issuer,
            jwks_url=jwks_url or issuer + JWKS_PATH,
            authorized_parties=parties,
            audience=config.get("CLERK_AUDIENCE") or None,
            role_map=parse_role_map(config.get("CLERK_ROLE_MAP") or "admin=operator,member=operator"),
            cooldown=float(config.get("CLERK_JWKS_COOLDOWN_SECONDS", 30)),
        )


class Verifier:
    """Checks Clerk session tokens; one per app, its JWKS cached and refetched at a bounded rate."""

    def __init__(self, settings):
        self.settings = settings
        # The JWK set cache (lifespan) is enough; no per-kid cache, so a key removed upstream stops working.
        self.jwks = jwt.PyJWKClient(
            settings.jwks_url,
            lifespan=JWKS_LIFESPAN_SECONDS,
            timeout=JWKS_TIMEOUT_SECONDS,
            cooldown_duration=settings.cooldown,
        )

    def claims(self, token):
        """Return the verified claims of `token`, or raise Unauthorized saying why (never echoing it)."""
        s = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _invalid("is malformed") from None
        if header.get("alg") != "RS256":
            raise _invalid("is not signed with RS256")
        if not isinstance(header.get("kid"), str):
            raise _invalid("names no signing key (kid)")
        key = self._key(header["kid"])
        options = {"require": REQUIRED_CLAIMS + (["aud"] if s.audience else [])}
        try:
            claims = jwt.decode(
                token, key, algorithms=["RS256"], issuer=s.issuer, audience=s.audience,
                leeway=LEEWAY_SECONDS, options=options,
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise _invalid("has expired") from None
        except jwt.ImmatureSignatureError:
            raise _invalid("is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise _invalid("comes from another issuer") from None
        except jwt.InvalidAudienceError:
            raise _invalid("is for another audience") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"has no {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise _invalid("has a bad signature") from None
        except jwt.InvalidTokenError:
            raise _invalid("is invalid") from None
        if claims.get("azp") not in s.authorized_parties:
            raise _invalid("was issued to a party that is not authorized (azp)")
        if claims.get("sts") == "pending":
            raise _invalid("belongs to a pending session")
        if not isinstance(claims["sub"], str) or not SUBJECT.fullmatch(claims["sub"]):
            raise _invalid("has an unusable sub claim")
        return claims

    def _key(self, kid):
        try:
            return self.jwks.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError as exc:
            log.warning(
                "Clerk JWKS unavailable (%s): %s", self.settings.jwks_url, type(exc.__cause__).__name__
            )
            raise Unauthorized(
                "Clerk session tokens cannot be checked right now (signing keys unavailable)",
                error_code="CLERK_KEYS_UNAVAILABLE",
            ) from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, jwt.InvalidKeyError):
            raise _invalid("is signed by an unknown key") from None


def _invalid(why):
    return Unauthorized(f"The Clerk session token {why}", error_code="CLERK_TOKEN_INVALID")


def organization_claim(claims):
    """Return (organization id, organization role) of the token's active organization, else (None, None)."""
    org = claims.get("o")
    if isinstance(org, dict) and org.get("id"):
        return org["id"], _bare_role(org.get("rol"))
    if claims.get("org_id"):
        return claims["org_id"], _bare_role(claims.get("org_role"))
    return None, None


@dataclass(frozen=True)
class ClerkPrincipal:
    """A Clerk user acting in the token's active organization with the role map's role and scopes."""

    clerk_user_id: str
    organization_id: str | None  # None: no active organization, or one we do not know
    clerk_role: str | None
    role: str | None
    scopes: frozenset = frozenset()
    user = None
    token = None
    sees_all = False

    @property
    def label(self):
        return f"clerk:{self.clerk_user_id}"

    @property
    def identity(self):
        return f"clerk:{self.clerk_user_id}"

    def role_in(self, org_id):
        """Return the mapped role in the token's organization; no role anywhere else."""
        return self.role if self.organization_id is not None and org_id == self.organization_id else None

    def visible_org_ids(self):
        return [self.organization_id] if self.role_in(self.organization_id) else []

    def default_org_id(self):
        """Return the token's organization; without one, nothing tenant-scoped is reachable (403)."""
        if self.organization_id is None:
            raise Forbidden("This Clerk session has no active organization known here")
        return self.organization_id


def is_jwt(token):
    """Tell whether a bearer token is a JWT for us to check, rather than one of our API tokens."""
    return verifier() is not None and not token.startswith("rtq_") and token.count(".") == 2


def verifier():
    """Return this app's Verifier, or None when Clerk is off."""
    return current_app.extensions.get("clerk")


def principal(token):
    """Return the ClerkPrincipal of a verified token (raises Unauthorized), recording when it was seen."""
    v = verifier()
    claims = v.claims(token)
    org_id, clerk_role = organization_claim(claims)
    known = None
    if isinstance(org_id, str) and ORG_ID_PATTERN.match(org_id):
        known = db.session.get(Organization, org_id)
    grant = v.settings.role_map.get(clerk_role) if known else None
    if known:
        _seen(known.id, claims["sub"], clerk_role)
    return ClerkPrincipal(
        clerk_user_id=claims["sub"],
        organization_id=known.id if known else None,
        clerk_role=clerk_role if isinstance(clerk_role, str) else None,
        role=grant.role if grant else None,
        scopes=grant.scopes if grant else frozenset(),
    )


def _seen(org_id, clerk_user_id, clerk_role):
    now = utcnow()
    row = get_for_org(ClerkUser, org_id, clerk_user_id=clerk_user_id)
    role = clerk_role[:64] if isinstance(clerk_role, str) else None
    if row is None:
        db.session.add(
            ClerkUser(organization_id=org_id, clerk_user_id=clerk_user_id, clerk_role=role, last_seen_at=now)
        )
    elif now - row.last_seen_at > SEEN_RESOLUTION or row.clerk_role != role:
        row.last_seen_at, row.clerk_role = now, role
    else:
        return
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a concurrent first request recorded the same user


def seen_users(org_id):
    """Return the Clerk users seen in an organization, most recent first."""
    stmt = for_org(ClerkUser, org_id).order_by(ClerkUser.last_seen_at.desc())
    return list(db.session.execute(stmt).scalars())


def init_app(app):
    """Check the Clerk settings (start-up fails on a bad one) and make the verifier."""
    settings = ClerkSettings.from_config(app.config)
    if settings is not None:
        app.extensions["clerk"] = Verifier(settings)
    app.jinja_env.globals["clerk_settings"] = settings
    app.jinja_env.globals["clerk_seen_users"] = seen_users
