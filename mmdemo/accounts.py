"""Who may do what: local accounts with salted scrypt password hashes, and the roles checked on the server.

Roles are ordered: an admin may do what a reviewer may, a reviewer what an annotator may. Every UI handler
and CLI command that reads or writes labels calls `require_role` first, so hiding a button is never the
only guard.

Every write from the UI and the API passes one gate here (`require_write`, `require_index_write`,
`require_owner`): anonymous writes follow `MMDEMO_ANONYMOUS_WRITES`, and what someone made (a prediction,
a label set) is theirs to change, or a reviewer's/admin's. An anonymous visitor is told apart by their
browser session (`visitor`), so one visitor cannot correct another's predictions.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable

from mmdemo import config
from mmdemo.data import ANONYMOUS, Store, UserRecord, default_store

ROLES = ("annotator", "reviewer", "admin")
ANNOTATOR, REVIEWER, ADMIN = ROLES
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD_LENGTH = 8
# scrypt cost: about 50 ms per check on a laptop core, slow enough to make guessing expensive.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


READ_ONLY = "this demo is read-only for visitors who are not signed in"  # the banner says "read-only"


class AccessDenied(PermissionError):
    """The signed-in user's role does not allow this action."""


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(candidate.hex(), digest)


def check_role(role: str) -> str:
    role = role.strip().lower()
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    return role


def add_user(
    name: str, role: str, password: str | None, *, oauth: bool = False, store: Store | None = None
) -> UserRecord:
    """Create or replace an account. `oauth` accounts have no password: they sign in with Hugging Face."""
    store = store or default_store()
    name = name.strip()
    if not NAME_PATTERN.match(name) or is_anonymous(name):
        raise ValueError(f"{name!r} is not a usable name: letters, digits and _ . @ - only, at most 64")
    role = check_role(role)
    if oauth:
        return store.save_user(name, role, password_hash=None, source="oauth")
    if password is None or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return store.save_user(name, role, password_hash=hash_password(password), source="local")


def set_role(name: str, role: str, *, store: Store | None = None) -> UserRecord:
    return (store or default_store()).set_user_role(name, check_role(role))


def list_users(store: Store | None = None) -> list[UserRecord]:
    return (store or default_store()).users()


def authenticate(name: str, password: str, *, store: Store | None = None) -> bool:
    account = (store or default_store()).user(name)
    return (
        account is not None and account.source == "local" and verify_password(password, account.password_hash)
    )


def is_anonymous(user: str) -> bool:
    return user == ANONYMOUS or user.startswith(f"{ANONYMOUS}:")


def visitor(user: str, session: str | None) -> str:
    """Who is asking, as stored with what they make: a signed-in user's name, or for an anonymous visitor
    `anonymous:<hash of the browser session>` (the session itself is never stored)."""
    if not is_anonymous(user) or not session:
        return user
    return f"{ANONYMOUS}:{hashlib.sha256(session.encode()).hexdigest()[:16]}"


def role_of(user: str, *, store: Store | None = None) -> str | None:
    """The user's role, or None when they may not label at all.

    Anonymous visitors annotate unless `MMDEMO_ANONYMOUS_WRITES=0`; on a Space, a Hugging Face user with
    no local account gets `MMDEMO_OAUTH_ROLE` (annotator by default)."""
    if is_anonymous(user):
        return ANNOTATOR if config.anonymous_writes() else None
    account = (store or default_store()).user(user)
    if account is not None:
        return account.role
    return check_role(config.oauth_default_role()) if config.on_spaces() else None


def require_role(user: str, role: str, *, store: Store | None = None) -> str:
    """Return the user's role when it is at least `role`; raise `AccessDenied` otherwise."""
    actual = role_of(user, store=store)
    if actual is None or ROLES.index(actual) < ROLES.index(role):
        who = "anonymous visitors" if is_anonymous(user) else f"{user} ({actual or 'no role'})"
        raise AccessDenied(f"{who} may not do this: it needs the {role} role")
    return actual


def has_role(user: str, role: str, *, store: Store | None = None) -> bool:
    try:
        require_role(user, role, store=store)
    except AccessDenied:
        return False
    return True


def may_roll_back(user: str, *, store: Store | None = None) -> bool:
    """Who may roll back model versions: a user named in `MMDEMO_ADMINS`, or anyone with the admin role.

    An open demo (no `MMDEMO_ADMINS`, no accounts) lets anyone roll back; once either exists, only those."""
    named = config.admins()
    if named is not None and user in named:
        return True
    store = store or default_store()
    if not is_anonymous(user) and has_role(user, ADMIN, store=store):
        return True
    return named is None and not store.users()


def require_roll_back(user: str, *, store: Store | None = None) -> None:
    if not may_roll_back(user, store=store):
        who = "anonymous visitors" if is_anonymous(user) else user
        raise AccessDenied(f"only admins may roll back model versions ({who} is not one)")


def gradio_auth(store: Store | None = None) -> Callable[[str, str], bool] | None:
    """The `auth=` for `launch()`: local accounts once any exist; None (anonymous demo) otherwise.

    On a Space, people sign in with Hugging Face instead (the app shows a LoginButton)."""
    store = store or default_store()
    if config.on_spaces() or not any(account.source == "local" for account in store.users()):
        return None
    return lambda name, password: authenticate(name, password, store=store)


# -- the one write gate ------------------------------------------------------------------------------------
def require_write(user: str | None, what: str) -> None:
    """Refuse an anonymous visitor's write of `what` (e.g. "corrections") when `MMDEMO_ANONYMOUS_WRITES=0`."""
    if is_anonymous(user or ANONYMOUS) and not config.anonymous_writes():
        raise AccessDenied(f"{READ_ONLY}: sign in to save {what}")


def accounts_exist(store: Store | None = None) -> bool:
    """Whether people can sign in here: local accounts exist, or Hugging Face sign-in on a Space."""
    return config.on_spaces() or bool((store or default_store()).users())


def require_index_write(user: str | None, *, store: Store | None = None) -> None:
    """Adding images to a shared index: anyone in an open demo; a signed-in user once accounts exist,
    unless an admin opened it to everyone (`MMDEMO_OPEN_INDEX_WRITES=1`)."""
    user = user or ANONYMOUS
    require_write(user, "images to the index")
    if is_anonymous(user) and accounts_exist(store) and not config.open_index_writes():
        raise AccessDenied("sign in to add images to the shared index: anonymous visitors may only search it")


def sees_everything(user: str | None, *, store: Store | None = None) -> bool:
    """Reviewers and admins see and correct everyone's rows; others only their own."""
    user = user or ANONYMOUS
    return not is_anonymous(user) and has_role(user, REVIEWER, store=store)


def require_owner(user: str | None, owner: str, what: str, *, store: Store | None = None) -> None:
    """Refuse a change to `what` (made by `owner`) by anyone but its owner or a reviewer/admin."""
    user = user or ANONYMOUS
    if user != owner and not sees_everything(user, store=store):
        raise AccessDenied(f"{what} was made by someone else: only they, or a reviewer, may change it")


def require_label_set_owner(user: str | None, owner: str, name: str, *, store: Store | None = None) -> None:
    """Anyone may create a label set; only its creator or an admin may replace it."""
    user = user or ANONYMOUS
    if user != owner and (is_anonymous(user) or not has_role(user, ADMIN, store=store)):
        raise AccessDenied(
            f"label set {name!r} belongs to someone else: only its creator or an admin may replace it; "
            "save it under a new name"
        )
