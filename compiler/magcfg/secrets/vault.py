"""Talking to a live Vault or OpenBao server: connect, authenticate, read KV v2.

Used by ``magcfg secrets verify``; light enough for the runtime: the client is ``hvac``,
imported only when a connection is made, so importing this module loads nothing beyond
the standard library.

Where the server is and how to log in come from the environment, as the Vault and
OpenBao CLIs read it (each ``VAULT_*`` name also as ``BAO_*``; ``VAULT_*`` wins):

=========================  =====================================================
``VAULT_ADDR``             the server, e.g. ``https://vault.example:8200``
``VAULT_TOKEN``            token auth
``VAULT_ROLE_ID`` +        AppRole auth (mount ``VAULT_APPROLE_MOUNT``, default
``VAULT_SECRET_ID``        ``approle``)
``VAULT_<X>_FILE``         for ``TOKEN``, ``ROLE_ID``, ``SECRET_ID``: read the value
                           from that file (a mounted Secret) when ``VAULT_<X>`` is unset
``VAULT_K8S_ROLE``         Kubernetes auth with the pod's service-account token
                           (``VAULT_K8S_TOKEN_PATH``, default the projected token;
                           mount ``VAULT_K8S_MOUNT``, default ``kubernetes``)
``VAULT_AUTH_METHOD``      ``token``, ``approle`` or ``kubernetes`` when several are set
``VAULT_NAMESPACE``        Vault Enterprise / OpenBao namespace
``VAULT_CACERT``           CA bundle that signs the server's certificate
``VAULT_SKIP_VERIFY``      ``true``: do not verify TLS (never in production)
``VAULT_CLIENT_TIMEOUT``   seconds one request may take, all of it (connecting, the
                           answer's headers and its body), default 10
=========================  =====================================================

No message here ever holds a secret value, a token or a secret ID: every error is
written from what failed (address, path, HTTP status), never from the server's body or
the client's exception text, which may echo a response.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from ..errors import Diagnostic, MagcfgError, UsageError
from ..net.deadline import Deadline
from ..net.origin import same_server
from .redaction import without_login

if TYPE_CHECKING:
    import hvac  # magcfg: ignore[MAG004] reason: magcfg's own Vault client

AuthMethod = Literal["token", "approle", "kubernetes"]
AUTH_METHODS: tuple[AuthMethod, ...] = ("token", "approle", "kubernetes")
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Largest answer read from the server; a larger one is an error, read no further.
Vault's integrated storage refuses an entry over 1 MiB (``max_entry_size``'s default;
Consul's limit is 512 KiB), so no secret is larger than that plus its JSON (escaping,
metadata, lease fields): 4 MiB leaves room for both, and still bounds what a broken or
hostile server can make the app hold in memory (the client reads with no limit of its
own)."""
MAX_LEASE_SECONDS = (2**63 - 1) // 10**9
"""Longest lease duration or token TTL taken from the server: Vault and OpenBao hold a
TTL as a Go ``time.Duration`` (at most 2^63 - 1 ns), so none sends a longer one; a
longer one (a 400-digit integer) would overflow the float deadlines it is turned into."""

KvStatus = Literal["ok", "missing-path", "missing-key", "deleted", "destroyed", "denied"]


class VaultError(MagcfgError):
    """The server cannot be used: unreachable, too slow, TLS, refused credentials."""


class VaultDenied(VaultError):
    """The token is valid but its policies do not grant the path."""


class VaultTokenRefused(VaultError):
    """The server refuses the token: wrong, expired or revoked."""


class VaultUsageError(UsageError):
    """The environment does not say where Vault is or how to log in."""


def _problem(message: str) -> list[Diagnostic]:
    return [Diagnostic("", None, None, message, code="vault")]


@dataclass(frozen=True)
class VaultConfig:
    """Where the server is and how to authenticate (credentials kept out of ``repr``)."""

    addr: str
    auth: AuthMethod
    token: str | None = field(default=None, repr=False)
    role_id: str | None = field(default=None, repr=False)
    secret_id: str | None = field(default=None, repr=False)
    approle_mount: str = "approle"
    k8s_role: str | None = None
    k8s_token_path: str = K8S_TOKEN_PATH
    k8s_mount: str = "kubernetes"
    namespace: str | None = None
    verify: bool | str = True
    timeout: float = DEFAULT_TIMEOUT

    @property
    def shown(self) -> str:
        """``addr`` as messages and reports name it: without a login it may hold
        (``https://USER:PASSWORD@proxy``, which requests sends as basic auth)."""
        return without_login(self.addr)


def _get(environ: Mapping[str, str], name: str) -> str | None:
    """``VAULT_<name>`` or else ``BAO_<name>``, empty meaning unset."""
    return environ.get(f"VAULT_{name}") or environ.get(f"BAO_{name}") or None


def _get_or_file(environ: Mapping[str, str], name: str) -> str | None:
    """``VAULT_<name>``, else the content of the file ``VAULT_<name>_FILE`` names (a
    mounted Kubernetes Secret), stripped; ``BAO_`` spellings too."""
    value = _get(environ, name)
    path = _get(environ, f"{name}_FILE")
    if value is not None or path is None:
        return value
    from ..durable import read_regular

    try:
        text = read_regular(path, 1 << 16, follow_symlinks=True).decode().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
        raise VaultUsageError(_problem(
            f"cannot read VAULT_{name}_FILE {path}: {reason}")) from None
    return text or None


def vault_config(environ: Mapping[str, str], project_addr: str | None = None) -> VaultConfig:
    """The connection the environment describes. ``project_addr`` (the project file's
    address for the environment) is named when ``VAULT_ADDR``/``BAO_ADDR`` is unset, never
    used: the credentials come from the environment, and a pull request writes the
    project file, which would have them sent to a server of its choosing."""
    addr = _get(environ, "ADDR")
    if not addr and project_addr:
        raise VaultUsageError(_problem(
            "no Vault address: set VAULT_ADDR (or BAO_ADDR); the project file names "
            f"{without_login(project_addr)} for this environment, but the credentials go "
            "only to the server the environment names (a pull request writes the project "
            "file)"))
    if not addr:
        raise VaultUsageError(_problem(
            "no Vault address: set VAULT_ADDR (or BAO_ADDR), e.g. https://vault.example:8200"))
    if not re.fullmatch(r"https?://[^\s/?#]+(?:/[^\s?#]*)?", addr):
        raise VaultUsageError(_problem(
            "VAULT_ADDR must be an http:// or https:// URL such as https://vault.example:8200"))
    timeout_text = _get(environ, "CLIENT_TIMEOUT")
    timeout = DEFAULT_TIMEOUT
    if timeout_text is not None:
        try:
            timeout = float(timeout_text.removesuffix("s"))
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= MAX_TIMEOUT:
            raise VaultUsageError(_problem(
                f"VAULT_CLIENT_TIMEOUT is a number of seconds above 0 and at most {MAX_TIMEOUT:g}"))
    verify: bool | str = True
    skip = (_get(environ, "SKIP_VERIFY") or "").lower()
    if skip in ("1", "true", "yes"):
        verify = False
    elif _get(environ, "CACERT"):
        verify = str(_get(environ, "CACERT"))
    token = _get_or_file(environ, "TOKEN")
    role_id, secret_id = _get_or_file(environ, "ROLE_ID"), _get_or_file(environ, "SECRET_ID")
    k8s_role = _get(environ, "K8S_ROLE")
    chosen = _get(environ, "AUTH_METHOD")
    method: AuthMethod | None = None
    for known in AUTH_METHODS:
        if chosen == known:
            method = known
    if chosen is not None and method is None:
        raise VaultUsageError(_problem(
            f"VAULT_AUTH_METHOD must be one of {', '.join(AUTH_METHODS)}"))
    if method is None:
        method = ("token" if token else "approle" if role_id or secret_id
                  else "kubernetes" if k8s_role else None)
    if method is None:
        raise VaultUsageError(_problem(
            "no Vault credentials: set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID "
            "(AppRole), or VAULT_K8S_ROLE (Kubernetes auth)"))
    if method == "token" and not token:
        raise VaultUsageError(_problem("VAULT_AUTH_METHOD=token needs VAULT_TOKEN"))
    if method == "approle" and not (role_id and secret_id):
        raise VaultUsageError(_problem("AppRole auth needs both VAULT_ROLE_ID and VAULT_SECRET_ID"))
    if method == "kubernetes" and not k8s_role:
        raise VaultUsageError(_problem("Kubernetes auth needs VAULT_K8S_ROLE (the Vault role)"))
    return VaultConfig(
        addr=addr.rstrip("/"), auth=method, token=token, role_id=role_id, secret_id=secret_id,
        approle_mount=(_get(environ, "APPROLE_MOUNT") or "approle").strip("/"),
        k8s_role=k8s_role,
        k8s_token_path=_get(environ, "K8S_TOKEN_PATH") or K8S_TOKEN_PATH,
        k8s_mount=(_get(environ, "K8S_MOUNT") or "kubernetes").strip("/"),
        namespace=_get(environ, "NAMESPACE"), verify=verify, timeout=timeout)


@dataclass(frozen=True)
class KvRead:
    """What reading one KV v2 secret found. ``data`` holds the values (never shown);
    ``version`` is the current version when the server said it."""

    mount: str
    path: str
    status: KvStatus
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    version: int | None = None

    def describe(self) -> str:
        where = f"{self.mount}/{self.path}"
        if self.status == "missing-path":
            return f"no secret at {where} (KV v2 path {self.mount}/data/{self.path})"
        if self.status == "deleted":
            return f"the current version ({self.version}) of {where} is deleted"
        if self.status == "destroyed":
            return f"the current version ({self.version}) of {where} is destroyed"
        if self.status == "denied":
            return (f"permission denied reading {self.mount}/data/{self.path}: the token's "
                    "policies do not grant read there")
        return f"{where} version {self.version}"


@dataclass(frozen=True)
class Leased:
    """What a logical read returned: ``data`` (never shown) and its lease (``lease_id``
    empty and ``lease_duration`` 0 when the secret has none)."""

    path: str
    data: Mapping[str, Any] = field(repr=False)
    lease_id: str = field(default="", repr=False)
    lease_duration: int = 0
    renewable: bool = False


class VaultSession:
    """An authenticated client. Every call ends within the configured timeout, all of
    it; every failure becomes a :class:`VaultError` whose message holds no server text."""

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self._client: hvac.Client | None = None

    def _connect(self) -> hvac.Client:
        try:
            import hvac  # magcfg: ignore[MAG004] reason: magcfg's own Vault client
        except ImportError:  # the slim runtime install: only the `vault` extra brings hvac
            raise VaultError(_problem("talking to Vault needs the hvac package: "
                                      "pip install 'magcfg[vault]'")) from None
        from ..net.requests_session import session as new_session

        session = new_session()
        session.hooks["response"].append(_ServerOnly(self.config.addr))
        session.hooks["response"].append(_bounded)
        # hvac takes a session's own verify (True unless set) over its verify argument.
        session.verify = self.config.verify
        return hvac.Client(url=self.config.addr, token=self.config.token,
                           namespace=self.config.namespace, verify=self.config.verify,
                           timeout=self.config.timeout, session=session)

    @property
    def client(self) -> hvac.Client:
        if self._client is None:
            self.login()
        assert self._client is not None
        return self._client

    def login(self) -> None:
        """Authenticate (token: check it is valid; AppRole, Kubernetes: log in)."""
        client = self._connect()
        config = self.config
        if config.auth == "token":
            try:
                self._call("auth/token/lookup-self", client.auth.token.lookup_self)
            except _Forbidden as exc:
                # An unknown token is refused before any policy is consulted ("permission
                # denied" alone); a valid token whose policies lack lookup-self gets the
                # policy's denial, which is not a credentials problem.
                if exc.plain:
                    raise VaultTokenRefused(_problem(
                        f"Vault at {config.shown} refused the token (VAULT_TOKEN): it is wrong, "
                        "expired or revoked")) from None
            self._client = client
            return
        if config.auth == "approle":
            where = f"auth/{config.approle_mount}/login"
            login = lambda: client.auth.approle.login(  # noqa: E731
                role_id=config.role_id, secret_id=config.secret_id,
                mount_point=config.approle_mount, use_token=True)
            what = "the AppRole login (VAULT_ROLE_ID / VAULT_SECRET_ID wrong, or the secret ID expired)"
        else:
            from ..durable import read_regular

            try:
                jwt = read_regular(config.k8s_token_path, 1 << 16,
                                   follow_symlinks=True).decode().strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "unreadable"
                raise VaultError(_problem(
                    f"cannot read the Kubernetes service-account token {config.k8s_token_path}: "
                    f"{reason} (VAULT_K8S_TOKEN_PATH)")) from None
            where = f"auth/{config.k8s_mount}/login"
            login = lambda: client.auth.kubernetes.login(  # noqa: E731
                role=config.k8s_role, jwt=jwt, use_token=True, mount_point=config.k8s_mount)
            what = f"the Kubernetes login (role {config.k8s_role!r})"
        try:
            self._call(where, login)
        except (_Forbidden, _Status) as exc:
            raise VaultError(_problem(
                f"Vault at {config.shown} refused {what}: HTTP {exc.status} on {where}")) from None
        self._client = client

    def read(self, path: str) -> Leased:
        """A logical read of ``path`` (a dynamic secret such as ``database/creds/<role>``):
        its data and lease. Raises :class:`VaultDenied` when the policies do not grant it,
        :class:`VaultError` for anything else (no secret there, refused token, ...)."""
        client = self.client
        try:
            found = self._call(path, lambda: client.adapter.get(f"/v1/{path}"))
        except _Forbidden as exc:
            raise self.denied(path, exc.plain) from None
        except _Status as exc:
            what = "no secret there" if exc.status in (404, 405) else f"HTTP {exc.status}"
            raise VaultError(_problem(
                f"Vault at {self.config.shown} answered {what} reading {path}")) from None
        if not isinstance(found, dict) or not isinstance(found.get("data"), dict):
            raise VaultError(_problem(
                f"Vault at {self.config.shown} returned no data reading {path}"))
        return Leased(path, found["data"], str(found.get("lease_id") or ""),
                      self._seconds(found.get("lease_duration"), path),
                      found.get("renewable") is True)

    def exists(self, path: str) -> bool | None:
        """Whether a logical read of ``path`` finds something (``database/roles/<role>``):
        None when the token's policies do not grant it. Nothing read is returned. Only
        for paths whose read has no effect (never ``.../creds/...``, which issues a lease)."""
        client = self.client
        try:
            self._call(path, lambda: client.adapter.get(f"/v1/{path}"))
        except _Forbidden:
            return None
        except _Status as exc:
            if exc.status in (404, 405):
                return False
            raise VaultError(_problem(
                f"Vault at {self.config.shown} answered HTTP {exc.status} reading {path}")) from None
        return True

    def renew_lease(self, lease_id: str, increment: int) -> int:
        """Renew ``lease_id`` by ``increment`` seconds; the duration the server granted.
        Raises :class:`VaultError` if it refuses (revoked, expired, past its max TTL)."""
        client = self.client
        where = "sys/leases/renew"
        try:
            found = self._call(where, lambda: client.sys.renew_lease(lease_id, increment))
        except (_Forbidden, _Status) as exc:
            raise VaultError(_problem(
                f"Vault at {self.config.shown} refused to renew the lease (HTTP {exc.status} "
                f"on {where}): it is revoked, expired or not renewable")) from None
        return self._seconds(found.get("lease_duration") if isinstance(found, dict) else None,
                             where)

    def token_ttl(self) -> tuple[int, bool]:
        """The token's remaining TTL in seconds (0: never expires) and whether it is
        renewable; ``(0, False)`` when its policies do not grant lookup-self. Raises
        :class:`VaultTokenRefused` if the server refuses the token."""
        client = self.client
        try:
            found = self._call("auth/token/lookup-self", client.auth.token.lookup_self)
        except _Forbidden as exc:
            if not exc.plain:
                return 0, False
            raise VaultTokenRefused(_problem(
                f"Vault at {self.config.shown} refused the token (HTTP {exc.status} on "
                "auth/token/lookup-self): it is wrong, expired or revoked")) from None
        except _Status as exc:
            raise VaultTokenRefused(_problem(
                f"Vault at {self.config.shown} refused the token (HTTP {exc.status} on "
                "auth/token/lookup-self): it is wrong, expired or revoked")) from None
        data = found.get("data") if isinstance(found, dict) else None
        ttl = data.get("ttl") if isinstance(data, dict) else None
        return (self._seconds(ttl, "auth/token/lookup-self"),
                bool(isinstance(data, dict) and data.get("renewable") is True))

    def renew_token(self) -> int:
        """Renew the session's token; its new TTL. Raises :class:`VaultError` if refused."""
        client = self.client
        where = "auth/token/renew-self"
        try:
            found = self._call(where, client.auth.token.renew_self)
        except (_Forbidden, _Status) as exc:
            raise VaultError(_problem(
                f"Vault at {self.config.shown} refused to renew the token (HTTP {exc.status} "
                f"on {where})")) from None
        auth = found.get("auth") if isinstance(found, dict) else None
        return self._seconds(auth.get("lease_duration") if isinstance(auth, dict) else None,
                             where)

    def mount_kind(self, mount: str) -> tuple[str, str] | None:
        """The secrets engine type and version option of ``mount`` (``("kv", "2")``), or
        None if the server does not say (the token sees nothing there)."""
        client = self.client
        where = f"sys/internal/ui/mounts/{mount}"
        try:
            found = self._call(where, lambda: client.adapter.get(f"/v1/{where}"))
        except (_Forbidden, _Status):
            return None
        data = found.get("data") if isinstance(found, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return None
        options = data.get("options") if isinstance(data.get("options"), dict) else {}
        return data["type"], str((options or {}).get("version") or "")

    def denied(self, path: str, plain: bool = True) -> VaultError:
        """A 403 on ``path``: a refused token (Vault says "permission denied" alone for an
        unknown token too, so ask lookup-self) or a policy that does not grant it."""
        if plain:
            try:
                self.token_ttl()
            except VaultError as refused:
                return refused
        return VaultDenied(_problem(
            f"permission denied reading {path}: the token's policies do not grant read there"))

    def read_kv(self, mount: str, path: str) -> KvRead:
        """The current version of KV v2 secret ``path`` on ``mount``."""
        client = self.client
        where = f"{mount}/data/{path}"
        try:
            found = self._call(where, lambda: client.secrets.kv.v2.read_secret_version(
                path, mount_point=mount, raise_on_deleted_version=False))
        except _Forbidden:
            return KvRead(mount, path, "denied")
        except _Status as exc:
            if exc.status != 404:
                raise VaultError(_problem(
                    f"Vault at {self.config.shown} answered HTTP {exc.status} reading {where}")) from None
            # A 404 for a destroyed version still carries its metadata; a 404 body of
            # another shape is a plain "no secret there".
            data = exc.body.get("data") if isinstance(exc.body, dict) else None
            metadata = data.get("metadata") if isinstance(data, dict) else None
            if isinstance(metadata, dict) and metadata.get("destroyed"):
                return KvRead(mount, path, "destroyed", version=_int(metadata.get("version")))
            return KvRead(mount, path, "missing-path")
        body = self._object(found, where, "data")
        metadata = self._object(body, where, "metadata")
        if not (body.get("data") is None or isinstance(body.get("data"), dict)):
            raise self._not_json(where)
        version = _int(metadata.get("version"))
        if metadata.get("destroyed"):
            return KvRead(mount, path, "destroyed", version=version)
        if metadata.get("deletion_time") or body.get("data") is None:
            return KvRead(mount, path, "deleted", version=version)
        data = body.get("data")
        return KvRead(mount, path, "ok", data if isinstance(data, dict) else {}, version)

    def _not_json(self, where: str) -> VaultError:
        return VaultError(_problem(
            f"Vault at {self.config.shown} sent an answer to {where} that is not Vault's JSON"))

    def _seconds(self, value: Any, where: str) -> int:
        """A lease duration or TTL of the answer to ``where``: 0 when absent (no lease,
        a token that never expires); a whole number of seconds from 0 to
        :data:`MAX_LEASE_SECONDS`, or the answer is not Vault's (a float, NaN, a negative
        or a wider number: what no Vault sends)."""
        if value is None:
            return 0
        if not isinstance(value, int) or isinstance(value, bool) \
                or not 0 <= value <= MAX_LEASE_SECONDS:
            raise self._not_json(where)
        return value

    def _object(self, found: Any, where: str, name: str) -> dict[str, Any]:
        """``found[name]`` when ``found`` is a JSON object and that is an object or absent
        (``{}``); else the answer is not Vault's (named by ``where``, never quoted)."""
        value = found.get(name) if isinstance(found, dict) else None
        if not isinstance(found, dict) or not (value is None or isinstance(value, dict)):
            raise self._not_json(where)
        return value or {}

    def _call(self, where: str, call: Any) -> Any:
        """Run one hvac call, ended at the timeout however slowly the server answers (a
        socket timeout bounds each wait only, which a server sending a byte now and then
        never reaches), translating every failure into a message of our own."""
        with Deadline(self.config.timeout) as deadline:
            try:
                found = self._attempt(where, call)
            except (VaultError, _Status):
                if not deadline.expired:
                    raise
        if deadline.expired:  # whatever was read before the sockets were shut is not the answer
            raise self._too_slow(where)
        return found

    def _too_slow(self, where: str) -> VaultError:
        return VaultError(_problem(
            f"Vault at {self.config.shown} did not answer {where} within "
            f"{self.config.timeout:g} s (VAULT_CLIENT_TIMEOUT)"))

    def _attempt(self, where: str, call: Any) -> Any:
        import hvac.exceptions  # magcfg: ignore[MAG004] reason: magcfg's own Vault client
        import requests

        addr = self.config.shown
        try:
            return call()
        except _TooLarge:
            raise VaultError(_problem(
                f"Vault at {addr} sent more than {MAX_RESPONSE_BYTES} bytes in answer to "
                f"{where}: no secret is that large")) from None
        except _Redirected:
            raise VaultError(_problem(
                f"Vault at {addr} redirected {where} to another server: the token and the "
                "login go only to the server VAULT_ADDR names (set VAULT_ADDR to the server "
                "that answers: its https:// address, or a cluster's active node where the "
                "standbys do not forward requests)")) from None
        except hvac.exceptions.Forbidden as exc:
            errors = (exc.json or {}).get("errors") if isinstance(exc.json, dict) else None
            raise _Forbidden(403, plain=errors == ["permission denied"]) from None
        except hvac.exceptions.VaultError as exc:
            body = exc.json if isinstance(exc.json, dict) else None
            raise _Status(_status_of(exc), body) from None
        except requests.exceptions.SSLError as exc:
            raise VaultError(_problem(
                f"TLS error talking to Vault at {addr}: {_tls_reason(exc)} "
                "(set VAULT_CACERT to the CA that signed the server's certificate)")) from None
        except requests.exceptions.Timeout:
            raise self._too_slow(where) from None
        except requests.exceptions.ConnectionError:
            raise VaultError(_problem(
                f"cannot reach Vault at {addr}: connection refused or no route (check VAULT_ADDR)")
            ) from None
        except requests.exceptions.RequestException as exc:
            raise VaultError(_problem(
                f"request to Vault at {addr} failed ({type(exc).__name__})")) from None
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
            # Not the JSON Vault sends: not JSON, nested too deeply, or of a shape hvac's
            # own reading of it trips over (a list where it expects an object).
            raise self._not_json(where) from None


class _Redirected(Exception):
    """A redirect to another server than ``VAULT_ADDR``'s."""


class _ServerOnly:
    """A ``requests`` response hook: a redirect is followed to the server ``addr`` names
    only (a path of its own, as a proxy in front of it may send). hvac sends the token as
    ``X-Vault-Token``, which ``requests`` keeps on a redirect to any host (it drops
    ``Authorization`` alone), and sends a login's body again on a 307: another server, or
    the same one over plain HTTP, would be handed them."""

    def __init__(self, addr: str) -> None:
        self.addr = addr

    def __call__(self, response: Any, *args: Any, **kwargs: Any) -> Any:
        if response.is_redirect:
            target = urllib.parse.urljoin(response.url, response.headers["location"])
            if not same_server(target, self.addr):
                response.close()
                raise _Redirected
        return response


class _TooLarge(Exception):
    """An answer larger than :data:`MAX_RESPONSE_BYTES`."""


def _bounded(response: Any, *args: Any, **kwargs: Any) -> Any:
    """A ``requests`` response hook: the body, read up to :data:`MAX_RESPONSE_BYTES`.
    Hooks run before ``requests`` reads the body itself; what is read here becomes the
    response's content, so nothing reads more."""
    length = response.headers.get("Content-Length") or ""
    if length.isdigit() and int(length) > MAX_RESPONSE_BYTES:
        response.close()
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            response.close()
            raise _TooLarge
        chunks.append(chunk)
    response._content = b"".join(chunks)
    return response


class _Status(Exception):
    def __init__(self, status: int, body: dict[str, Any] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class _Forbidden(_Status):
    def __init__(self, status: int, plain: bool) -> None:
        super().__init__(status)
        self.plain = plain


_STATUS_BY_CLASS = {"InvalidRequest": 400, "Unauthorized": 401, "Forbidden": 403,
                    "InvalidPath": 404, "UnsupportedOperation": 405, "PreconditionFailed": 412,
                    "RateLimitExceeded": 429, "InternalServerError": 500, "BadGateway": 502,
                    "VaultDown": 503, "VaultNotInitialized": 501}


def _status_of(exc: Exception) -> int:
    return _STATUS_BY_CLASS.get(type(exc).__name__, 0)


_SSL_REASON = re.compile(r"\[SSL: ([A-Z_]+)\]|(certificate verify failed|wrong version number"
                         r"|hostname mismatch|self[- ]signed certificate)", re.IGNORECASE)


def _tls_reason(exc: Exception) -> str:
    """The OpenSSL reason of a TLS failure (a fixed vocabulary, never server text)."""
    found = _SSL_REASON.search(str(exc))
    if found is None:
        return "handshake failed"
    return (found.group(1) or found.group(2)).lower().replace("_", " ")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
