"""Who may call the API, and under which name their answers are logged.

Three regimes, in this order, so the API is never more open than the web app:

- ``api_keys`` set: ``Authorization: Bearer KEY`` with one of them; nothing else is let in
  (a web login is not a key, so it cannot be replayed against the API).
- else ``auth`` (the web app's logins) set: ``Authorization: Bearer user:password`` with
  one of those logins; the user's private uploads are then theirs here too.
- neither: open, as the web app is; whatever key a client sends is accepted (the OpenAI
  client insists on sending one).

The ledger's session is ``api:key-<hash>`` (never the key itself), ``api:user:<name>`` or
``api:anon``, so answers given through the API can be told apart and grouped by caller.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.access import parse_auth
from assistant.api.errors import ApiError

if TYPE_CHECKING:
    from assistant.settings import Settings

SCHEME = "bearer"


@dataclass(frozen=True)
class Caller:
    """An admitted caller: the ledger's session name and the web login, if any."""

    session: str
    user: str | None = None


class Gate:
    """Admits or refuses a request by its Authorization header, per the settings."""

    def __init__(self, settings: Settings) -> None:
        self.keys = [key for key in (settings.api_keys or "").split(",") if key]
        self.logins = parse_auth(settings.auth) or []

    @property
    def regime(self) -> str:
        return "keys" if self.keys else "logins" if self.logins else "open"

    def admit(self, authorization: str | None) -> Caller:
        """The caller, or a 401 in OpenAI's shape."""
        if self.regime == "open":
            return Caller("api:anon")
        token = _bearer(authorization)
        if self.keys:
            for key in self.keys:
                if hmac.compare_digest(token.encode(), key.encode()):
                    return Caller("api:key-" + hashlib.sha256(key.encode()).hexdigest()[:8])
            raise _refused("Incorrect API key provided. Use one of the keys in "
                           "ASSISTANT_API_KEYS.")
        user, _, password = token.partition(":")
        for known, secret in self.logins:
            if hmac.compare_digest(f"{user}:{password}".encode(), f"{known}:{secret}".encode()):
                return Caller(f"api:user:{known}", user=known)
        raise _refused("Incorrect credentials: this server takes its web app's logins as "
                       "'Authorization: Bearer user:password'.")


def _bearer(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != SCHEME or not token.strip():
        raise _refused("You didn't provide an API key: send 'Authorization: Bearer KEY'.",
                       code="missing_api_key")
    return token.strip()


def _refused(message: str, code: str = "invalid_api_key") -> ApiError:
    return ApiError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})
