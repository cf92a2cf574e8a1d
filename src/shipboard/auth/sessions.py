"""Browser sign-in: password (argon2) and TOTP, lockout, sessions with an idle timeout, CSRF.

The cookie carries 256 random bits; the database keeps only their SHA-256 (like API tokens), so a
read of the table does not hand out sessions. Every login attempt is audited, ok or not. Failed
attempts — wrong password or wrong code — count towards a lockout of ``LOCK_AFTER`` tries for
``LOCK_FOR``; the answer never says whether the user exists.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth import repository, totp
from shipboard.auth.models import User, WebSession
from shipboard.auth.schemas import Principal
from shipboard.core.crypto import Keyring
from shipboard.core.errors import Forbidden, InvalidInput, NotFound, Unauthorized

LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
MAX_AGE = timedelta(hours=12)  # absolute, whatever the activity
TOUCH_EVERY = timedelta(seconds=60)  # last_seen_at writes are coalesced
MIN_PASSWORD = 12
_hasher = PasswordHasher()
# Verified against when the user does not exist, so both answers take the same time.
_DUMMY_HASH = _hasher.hash("shipboard-no-such-user")


def hash_session_id(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class LoginOutcome:
    ok: bool
    message: str
    cookie: str | None = None
    second_factor: bool = False


def set_password(
    session: Session, *, name: str, password: str, audit_context: AuditContext
) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
    user = repository.user_by_name(session, name)
    if user is None:
        raise NotFound(f"user {name!r} does not exist")
    user.password_hash = _hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    # A new password ends every browser session of the user.
    repository.delete_web_sessions_of(session, user.id)
    audit.record(
        session,
        context=audit_context,
        action="user.set_password",
        target_type="user",
        target_id=name,
    )


def _context(name: str, role: str | None, source_ip: str | None) -> AuditContext:
    return AuditContext(actor=name or "anonymous", actor_role=role or "none", source_ip=source_ip)


def _fail(
    session: Session, user: User | None, name: str, ip: str | None, now: datetime, why: str
) -> LoginOutcome:
    details: dict[str, object] = {"reason": why}
    if user is not None:
        user.failed_logins = (user.failed_logins or 0) + 1
        if user.failed_logins >= LOCK_AFTER:
            user.locked_until = now + LOCK_FOR
            user.failed_logins = 0
            details["locked_until"] = user.locked_until.isoformat()
    audit.record(
        session,
        context=_context(name, user.role if user else None, ip),
        action="login.failed",
        target_type="user",
        target_id=name[:200],
        details=details,
    )
    if user is not None and user.locked_until and user.locked_until > now:
        return LoginOutcome(False, _locked_message(user.locked_until, now))
    return LoginOutcome(False, "wrong user name, password or code")


def _locked_message(until: datetime, now: datetime) -> str:
    minutes = max(1, int((until - now).total_seconds() // 60) + 1)
    return f"too many failed attempts: the account is locked for {minutes} more minute(s)"


def login(
    session: Session, *, name: str, password: str, source_ip: str | None, now: datetime
) -> LoginOutcome:
    """Check a password. The caller commits whatever the outcome: failures must count."""
    user = repository.user_by_name(session, name)
    if user is not None and user.locked_until and user.locked_until > now:
        audit.record(
            session,
            context=_context(name, user.role, source_ip),
            action="login.failed",
            target_type="user",
            target_id=name,
            details={"reason": "locked"},
        )
        return LoginOutcome(False, _locked_message(user.locked_until, now))
    try:
        _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
        good = user is not None and user.password_hash is not None and not user.disabled
    except (VerificationError, InvalidHashError):
        good = False
    if not good or user is None:
        return _fail(session, user, name, source_ip, now, "password")
    cookie = _open(session, user, now, source_ip, pending=user.totp_enabled_at is not None)
    if user.totp_enabled_at is not None:
        return LoginOutcome(True, "enter the code from your authenticator app", cookie, True)
    user.failed_logins = 0
    audit.record(
        session,
        context=_context(name, user.role, source_ip),
        action="login.ok",
        target_type="user",
        target_id=name,
    )
    return LoginOutcome(True, "signed in", cookie)


def second_factor(
    session: Session,
    *,
    cookie: str,
    code: str,
    keyring: Keyring,
    source_ip: str | None,
    now: datetime,
) -> LoginOutcome:
    """Finish a login with a TOTP code; the session id changes (no fixation)."""
    row = repository.web_session(session, hash_session_id(cookie))
    if row is None or not row.second_factor_pending or row.expires_at <= now:
        return LoginOutcome(False, "the sign-in has expired; start again")
    user = repository.user_by_id(session, row.user_id)
    if user is None or user.disabled or not user.totp_secret:
        return LoginOutcome(False, "the sign-in has expired; start again")
    if user.locked_until and user.locked_until > now:
        session.delete(row)
        return LoginOutcome(False, _locked_message(user.locked_until, now))
    if not _accept_code(session, user, code, keyring, now):
        outcome = _fail(session, user, user.name, source_ip, now, "totp")
        if user.locked_until and user.locked_until > now:
            session.delete(row)
        return outcome
    session.delete(row)
    user.failed_logins = 0
    new_cookie = _open(session, user, now, source_ip, pending=False)
    audit.record(
        session,
        context=_context(user.name, user.role, source_ip),
        action="login.ok",
        target_type="user",
        target_id=user.name,
        details={"second_factor": "totp"},
    )
    return LoginOutcome(True, "signed in", new_cookie)


def _open(session: Session, user: User, now: datetime, ip: str | None, *, pending: bool) -> str:
    cookie = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id_hash=hash_session_id(cookie),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            second_factor_pending=pending,
            created_at=now,
            last_seen_at=now,
            expires_at=now + (timedelta(minutes=10) if pending else MAX_AGE),
            source_ip=ip,
        )
    )
    session.flush()
    return cookie


@dataclass(frozen=True)
class SessionInfo:
    principal: Principal
    csrf_token: str
    needs_touch: bool
    id_hash: str


def authenticate(session: Session, *, cookie: str, now: datetime, idle: timedelta) -> SessionInfo:
    """The principal behind a session cookie, or Unauthorized (expired, idle, half-signed-in,
    disabled user)."""
    row = repository.web_session(session, hash_session_id(cookie))
    if row is None or row.second_factor_pending:
        raise Unauthorized("not signed in")
    if row.expires_at <= now or row.last_seen_at + idle <= now:
        raise Unauthorized("the session has expired; sign in again")
    user = repository.user_by_id(session, row.user_id)
    if user is None or user.disabled:
        raise Unauthorized("not signed in")
    return SessionInfo(
        principal=Principal(user_id=user.id, name=user.name, role=user.role),
        csrf_token=row.csrf_token,
        needs_touch=now - row.last_seen_at >= TOUCH_EVERY,
        id_hash=row.id_hash,
    )


def touch(session: Session, *, id_hash: str, now: datetime) -> None:
    repository.touch_web_session(session, id_hash, now)


def check_csrf(info: SessionInfo, token: str | None) -> None:
    # As bytes: compare_digest refuses str with non-ASCII characters (a 500, not a 403).
    if not token or not hmac.compare_digest(info.csrf_token.encode(), token.encode()):
        raise CsrfFailed()


class CsrfFailed(Forbidden):
    """A cookie-authenticated write without the session's CSRF token."""

    title = "CSRF token missing or wrong"

    def __init__(self) -> None:
        super().__init__("this form or request lacks a valid CSRF token; reload the page")


def logout(session: Session, *, cookie: str) -> None:
    repository.delete_web_session(session, hash_session_id(cookie))


def _accept_code(session: Session, user: User, code: str, keyring: Keyring, now: datetime) -> bool:
    """Whether ``code`` is the user's current code and was not accepted before; if so, its
    step becomes the last accepted one."""
    if not user.totp_secret:
        return False
    step = totp.matching_step(
        keyring.decrypt(user.totp_secret), code, now.timestamp(), after=user.totp_last_step
    )
    if step is None or not repository.claim_totp_step(session, user.id, step):
        return False
    session.expire(user, ["totp_last_step"])
    return True


def reauthenticate(
    session: Session,
    *,
    user_id: uuid.UUID,
    password: str,
    code: str,
    keyring: Keyring,
    source_ip: str | None,
    now: datetime,
) -> bool:
    """Whether the signed-in user proved again who they are — their password, or a current
    code once two-factor sign-in is on — before a change to how they sign in.

    A session (cookie and CSRF token) alone must not be enough to remove or replace the second
    factor. A wrong password or code counts towards the lockout like a failed sign-in.
    """
    user = repository.user_by_id(session, user_id)
    if user is None or user.disabled or not (password or code):
        return False
    if user.locked_until and user.locked_until > now:
        return False
    ok = (
        bool(code)
        and user.totp_enabled_at is not None
        and _accept_code(session, user, code, keyring, now)
    )
    if not ok and password:
        try:
            _hasher.verify(user.password_hash or _DUMMY_HASH, password)
            ok = user.password_hash is not None
        except (VerificationError, InvalidHashError):
            ok = False
    if not ok:
        _fail(session, user, user.name, source_ip, now, "reauthentication")
        return False
    user.failed_logins = 0
    return True


def start_enrolment(
    session: Session, *, user_id: uuid.UUID, keyring: Keyring, audit_context: AuditContext
) -> str:
    """A fresh secret for the user to scan; active only once a code from it is confirmed.

    Two-factor sign-in is off from here until that confirmation (the caller re-authenticated
    the user first)."""
    user = repository.user_by_id(session, user_id)
    if user is None:
        raise NotFound("no such user")
    was_enabled = user.totp_enabled_at is not None
    secret = totp.new_secret()
    user.totp_secret = keyring.encrypt(secret)
    user.totp_enabled_at = None
    # Steps are counted per secret: no code of the new one has been seen.
    user.totp_last_step = None
    audit.record(
        session,
        context=audit_context,
        action="user.totp_enrolment_started",
        target_type="user",
        target_id=user.name,
        details={"replaces_enabled": was_enabled},
    )
    return secret


def remove_totp(session: Session, *, user_id: uuid.UUID, audit_context: AuditContext) -> None:
    """Turn two-factor sign-in off (the caller re-authenticated the user first)."""
    user = repository.user_by_id(session, user_id)
    if user is None:
        raise NotFound("no such user")
    was_enabled = user.totp_enabled_at is not None
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    audit.record(
        session,
        context=audit_context,
        action="user.totp_removed",
        target_type="user",
        target_id=user.name,
        details={"was_enabled": was_enabled},
    )


def confirm_enrolment(
    session: Session,
    *,
    user_id: uuid.UUID,
    code: str,
    keyring: Keyring,
    now: datetime,
    audit_context: AuditContext,
) -> bool:
    user = repository.user_by_id(session, user_id)
    if user is None or not user.totp_secret or user.totp_enabled_at is not None:
        return False
    # The confirming code counts as used: it cannot sign in again within its window.
    if not _accept_code(session, user, code, keyring, now):
        return False
    user.totp_enabled_at = now
    audit.record(
        session,
        context=audit_context,
        action="user.totp_enabled",
        target_type="user",
        target_id=user.name,
    )
    return True


def enrolling(user: User | None) -> bool:
    """Whether the user began TOTP enrolment and has not confirmed it yet."""
    return user is not None and bool(user.totp_secret) and user.totp_enabled_at is None


def pending_secret(user: User | None, *, keyring: Keyring) -> str | None:
    """The secret of an enrolment not confirmed yet, decrypted (the keyring may read its key
    file again, after another process rotated the key)."""
    if user is None or not enrolling(user):
        return None
    return keyring.decrypt(str(user.totp_secret))
