"""The Compute Engine metadata server (``/`` and ``/computeMetadata/v1/...``).

Every reply carries ``Metadata-Flavor: Google`` (:data:`METADATA`'s headers); a request
carrying ``X-Forwarded-For`` is refused before anything else (the API's guard); paths
under ``/computeMetadata/`` need ``Metadata-Flavor: Google`` (:func:`_flavored`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..._endpoints import DEFAULT_UNIVERSE_DOMAIN
from .._errors import TextError
from .._routing import Api, Call, TextErrors
from .._state import normalize_scopes, numeric_id
from .._wire import BadParams, Reply, json_reply, parse_params, text_reply

__all__ = ["METADATA"]


def _no_proxies(call: Call) -> None:
    if call.req.header("x-forwarded-for") is not None:
        raise TextError(403, "Request denied: the X-Forwarded-For header is not allowed.\n")


METADATA = Api(
    "metadata", TextErrors(),
    headers=(("Metadata-Flavor", "Google"), ("Server", "Metadata Server for VM")),
    guard=_no_proxies,
)

MetadataHandler = Callable[[Call, dict[str, str]], Reply]


def _flavored(handler: MetadataHandler) -> Callable[[Call], Reply]:
    """Check ``Metadata-Flavor: Google`` and parse the query, then call ``handler``."""
    def wrapped(call: Call) -> Reply:
        if call.req.header("metadata-flavor") != "Google":
            raise TextError(
                403,
                f"Your client does not have permission to get URL {call.req.path} from this "
                'server. Missing required header "Metadata-Flavor": "Google"\n')
        try:
            query = parse_params(call.req.query)
        except BadParams as exc:
            raise TextError(400, str(exc) + "\n") from exc
        return handler(call, query)
    wrapped.__name__ = wrapped.__qualname__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _text(value: str) -> Reply:
    return text_reply(200, value, "application/text")


def root(call: Call) -> Reply:
    """``GET /``: the detection ping (no ``Metadata-Flavor`` needed)."""
    return _text("computeMetadata/\n")


def _instance_id(call: Call) -> str:
    return numeric_id("instance:" + call.config.metadata_project_id, 19)


@_flavored
def project_id(call: Call, q: dict[str, str]) -> Reply:
    return _text(call.config.metadata_project_id)


@_flavored
def numeric_project_id(call: Call, q: dict[str, str]) -> Reply:
    return _text(call.config.metadata_numeric_project_id)


@_flavored
def instance_id(call: Call, q: dict[str, str]) -> Reply:
    return _text(_instance_id(call))


@_flavored
def zone(call: Call, q: dict[str, str]) -> Reply:
    return _text(f"projects/{call.config.metadata_numeric_project_id}/zones/us-central1-a")


@_flavored
def hostname(call: Call, q: dict[str, str]) -> Reply:
    return _text("emu-instance.us-central1-a.c.internal")


@_flavored
def universe_domain(call: Call, q: dict[str, str]) -> Reply:
    return _text(DEFAULT_UNIVERSE_DOMAIN)


@_flavored
def service_accounts(call: Call, q: dict[str, str]) -> Reply:
    return _text(f"default/\n{call.config.metadata_service_account_email}/\n")


def _account(call: Call) -> str:
    """The instance account's email; 404 unless ``{sa}`` is ``default`` or that email."""
    email = call.config.metadata_service_account_email
    if call.args["sa"] not in ("default", email):
        raise TextError(404, "Not Found\n")
    return email


@_flavored
def account(call: Call, q: dict[str, str]) -> Reply:
    """``.../service-accounts/{sa}/``: a listing, or ``?recursive=true`` JSON."""
    email = _account(call)
    if q.get("recursive", "").lower() == "true":
        return json_reply(200, {"aliases": ["default"], "email": email,
                                "scopes": list(call.config.metadata_scopes)})
    return _text("aliases\nemail\nidentity\nscopes\ntoken\n")


@_flavored
def account_email(call: Call, q: dict[str, str]) -> Reply:
    return _text(_account(call))


@_flavored
def account_aliases(call: Call, q: dict[str, str]) -> Reply:
    _account(call)
    return _text("default")


@_flavored
def account_scopes(call: Call, q: dict[str, str]) -> Reply:
    _account(call)
    return _text("".join(s + "\n" for s in call.config.metadata_scopes))


@_flavored
def account_token(call: Call, q: dict[str, str]) -> Reply:
    """``.../token[?scopes=a,b]``: an access token; counts ``metadata_token_issued``."""
    email = _account(call)
    scopes = tuple(call.config.metadata_scopes)
    if q.get("scopes"):
        scopes = tuple(normalize_scopes([s for s in q["scopes"].split(",") if s]))
    sa_id = numeric_id("sa:" + email)
    access, expires_in = call.state.new_access_token(
        now=call.now, scopes=scopes, azp=sa_id, email=email, sub=sa_id,
        source="metadata", expired=call.expired,
    )
    call.state.count("metadata_token_issued")
    return json_reply(200, {"access_token": access, "expires_in": expires_in,
                            "token_type": "Bearer"})


@_flavored
def account_identity(call: Call, q: dict[str, str]) -> Reply:
    """``.../identity?audience=X[&format=full]``: an ID token."""
    email = _account(call)
    audience = q.get("audience")
    if not audience:
        raise TextError(400, "non-empty audience parameter required\n")
    cfg = call.config
    sa_id = numeric_id("sa:" + email)
    extra: dict[str, object] = {}
    if q.get("format") == "full":
        extra["google"] = {"compute_engine": {
            "instance_id": _instance_id(call),
            "instance_name": "emu-instance",
            "project_id": cfg.metadata_project_id,
            "project_number": int(cfg.metadata_numeric_project_id)
            if cfg.metadata_numeric_project_id.isdigit() else 0,
            "zone": "us-central1-a",
        }}
    jwt = call.state.id_token(now=call.now, aud=audience, azp=sa_id, sub=sa_id, email=email,
                              extra=extra, expired=call.expired)
    return _text(jwt)


@_flavored
def not_found(call: Call, q: dict[str, str]) -> Reply:
    """Any other ``/computeMetadata/...`` path."""
    raise TextError(404, "Not Found\n")
