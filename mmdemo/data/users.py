"""Accounts: a name, a role, and a password hash (local) or none (Hugging Face sign-in)."""

from __future__ import annotations

from dataclasses import dataclass

from mmdemo.data.db import StoreCore, StoreError, now


@dataclass(frozen=True)
class UserRecord:
    name: str
    role: str
    password_hash: str | None
    source: str  # "local" (password) or "oauth" (Hugging Face sign-in)
    created_at: str
    updated_at: str


class UserRecords(StoreCore):
    def save_user(
        self, name: str, role: str, *, password_hash: str | None, source: str = "local"
    ) -> UserRecord:
        self._save(
            "users", "name", {"name": name, "role": role, "password_hash": password_hash, "source": source}
        )
        return self.user(name)  # type: ignore[return-value]

    def user(self, name: str) -> UserRecord | None:
        return self._record(UserRecord, "users", name)

    def users(self) -> list[UserRecord]:
        return self._records(UserRecord, "users", order_by="name")

    def set_user_role(self, name: str, role: str) -> UserRecord:
        with self._write() as db:
            if self._get("users", name) is None:
                raise StoreError(f"no user named {name!r}")
            db.table("users").update(name, {"role": role, "updated_at": now()})
        return self.user(name)  # type: ignore[return-value]
