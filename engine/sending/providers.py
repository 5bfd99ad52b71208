"""The providers file: where each channel goes, and how fast.

::

    [channels.email]
    adapter = "sendgrid"              # sendgrid | twilio | fcm | webhook | file
    base_url = "https://api.sendgrid.com"
    api_key_env = "SENDGRID_API_KEY"  # the secret itself only ever comes from the environment
    from = "news@example.com"
    rate_per_second = 100             # requests per second (a SendGrid request carries a batch)
    concurrency = 20
    batch_size = 500                  # recipients per SendGrid request (<= 1000)

    [channels.push]
    adapter = "webhook"
    url = "https://hooks.example.com/push"
    secret_env = "WINBACK_WEBHOOK_SECRET"
    rate_per_second = 500
    timeout_seconds = 10
    max_attempts = 8

Channels: ``email``, ``sms``, ``push``, ``ads``.  Keys per adapter:

- ``webhook``: ``url``, ``secret_env``;
- ``sendgrid``: ``base_url`` (default ``https://api.sendgrid.com``), ``api_key_env``,
  ``from``, ``batch_size``;
- ``twilio``: ``base_url`` (default ``https://api.twilio.com``), ``account_sid_env``,
  ``auth_token_env``, ``from``, ``status_callback``;
- ``fcm``: ``base_url`` (default ``https://fcm.googleapis.com``), ``project_id``,
  ``api_key_env`` (an OAuth 2 access token);
- ``file``: ``path`` (``.csv`` or ``.jsonl``), ``batch_size``;
- ``ads``: ``path`` (``.csv``: numbered parts beside it), ``platform`` (``meta`` or
  ``google``), ``batch_size``: platform-ready audience files (``adapters/ads.py``).

Common: ``rate_per_second`` (requests per second), ``concurrency``, ``timeout_seconds``
(per request), ``max_attempts``.  :func:`load_providers` checks names, types and
ranges without touching the environment; :func:`build_adapter` reads the secrets from
the environment and raises :class:`~engine.errors.ConfigError` naming a missing
variable (never its value).
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from engine.sending.protocol import Adapter, Secret
from engine.errors import ConfigError
from engine.schema import PROVIDER_CHANNELS as CHANNELS

__all__ = ["ChannelConfig", "load_providers", "build_adapter", "CHANNELS", "ADAPTERS"]

#: adapter name -> "module:class" implementing :class:`engine.sending.protocol.Adapter`
ADAPTER_CLASSES: dict[str, str] = {
    "webhook": "adapters.webhook:WebhookAdapter",
    "sendgrid": "adapters.sendgrid:SendGridAdapter",
    "twilio": "adapters.twilio:TwilioAdapter",
    "fcm": "adapters.fcm:FcmAdapter",
    "file": "adapters.file:FileAdapter",
    "ads": "adapters.ads:AdsAdapter",
}
ADAPTERS = tuple(ADAPTER_CLASSES)

_DEFAULT_BASE = {"sendgrid": "https://api.sendgrid.com", "twilio": "https://api.twilio.com",
                 "fcm": "https://fcm.googleapis.com"}
_REQUIRED = {"webhook": ("url", "secret_env"), "sendgrid": ("api_key_env",),
             "twilio": ("account_sid_env", "auth_token_env"), "fcm": ("project_id", "api_key_env"),
             "file": ("path",), "ads": ("path", "platform")}
_STRINGS = ("adapter", "base_url", "url", "api_key_env", "secret_env", "account_sid_env", "auth_token_env",
            "project_id", "path", "from", "status_callback", "platform")
_NUMBERS = ("rate_per_second", "timeout_seconds")
_INTS = ("concurrency", "max_attempts", "batch_size")
_KEYS = _STRINGS + _NUMBERS + _INTS
#: upper bounds: a typo such as concurrency = 100000000 would start that many tasks (memory
#: without end); no provider answers a message after hours, nor sends more per request
_MAX = {"concurrency": 1000, "max_attempts": 100, "batch_size": 100_000, "timeout_seconds": 3600.0}


@dataclass(frozen=True)
class ChannelConfig:
    """One ``[channels.NAME]`` table, checked.  Holds variable *names*, never secrets."""

    channel: str
    adapter: str
    url: str | None = None
    api_key_env: str | None = None
    secret_env: str | None = None
    account_sid_env: str | None = None
    auth_token_env: str | None = None
    project_id: str | None = None
    path: str | None = None
    sender: str | None = None  # the ``from`` key: sender email or phone number
    status_callback: str | None = None
    platform: str | None = None  # ads: "meta" or "google"
    rate_per_second: float | None = None
    concurrency: int = 10
    timeout_seconds: float = 10.0
    max_attempts: int | None = None
    batch_size: int | None = None
    source: str = field(default="<dict>", compare=False)


def _http_url(url: str) -> bool:
    """True for an http(s) URL with a host and, if any, a port 1-65535 (every message sent to
    anything else would fail and be given up on)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and (port is None or port >= 1) \
        and not any(c.isspace() for c in url)


def _where(source: str, channel: str, key: str | None = None) -> str:
    return f"{source} [channels.{channel}]" + (f" key '{key}'" if key else "")


def _check(channel: str, table: Any, source: str) -> ChannelConfig:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{_where(source, channel)} must be a table of keys (adapter, url, ...), "
                          f"not {type(table).__name__}; see examples/providers.example.toml")
    unknown = sorted(set(table) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{_where(source, channel, unknown[0])} is not a providers key; known keys: "
                          f"{', '.join(_KEYS)}. Fix the spelling or remove it.")
    adapter = table.get("adapter")
    if adapter not in ADAPTERS:
        raise ConfigError(f"{_where(source, channel, 'adapter')} is {adapter!r}; use one of "
                          f"{', '.join(ADAPTERS)}")
    for key in _STRINGS:
        if key in table and (not isinstance(table[key], str) or not table[key].strip()):
            raise ConfigError(f"{_where(source, channel, key)} must be a non-empty string, got {table[key]!r}")
    for key in _NUMBERS:
        v = table.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
            raise ConfigError(f"{_where(source, channel, key)} must be a number > 0 (per second / seconds), "
                              f"got {v!r}")
    for key in _INTS:
        v = table.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ConfigError(f"{_where(source, channel, key)} must be a whole number >= 1, got {v!r}")
    for key, most in _MAX.items():
        v = table.get(key)
        if v is not None and not v <= most:
            raise ConfigError(f"{_where(source, channel, key)} is {v!r}; at most {most:g} is allowed")
    if adapter == "sendgrid" and table.get("batch_size", 1) > 1000:
        raise ConfigError(f"{_where(source, channel, 'batch_size')} is {table['batch_size']}; SendGrid takes "
                          "at most 1000 personalizations per request")
    if adapter == "webhook" and "base_url" in table and "url" not in table:
        table = {**table, "url": table["base_url"]}
    for key in _REQUIRED[adapter]:
        if key not in table:
            raise ConfigError(f"{_where(source, channel, key)} is missing; the {adapter} adapter needs "
                              f"{', '.join(_REQUIRED[adapter])}")
    url = table.get("url") if adapter == "webhook" else table.get("base_url", _DEFAULT_BASE.get(adapter))
    if url is not None and not _http_url(url):
        raise ConfigError(f"{_where(source, channel, 'url' if adapter == 'webhook' else 'base_url')} is "
                          f"{url!r}; give an http:// or https:// URL with a host (and a port from 1 to 65535)")
    if adapter == "ads" and (table["platform"] not in ("meta", "google") or Path(table["path"]).suffix.lower() != ".csv"):
        raise ConfigError(f"{_where(source, channel, 'platform')}: the ads adapter writes platform = \"meta\" or "
                          f"\"google\" files to a path ending in .csv, got {table['platform']!r}, {table['path']!r}")
    if adapter == "file" and Path(table["path"]).suffix.lower() not in (".csv", ".jsonl"):
        raise ConfigError(f"{_where(source, channel, 'path')} is {table['path']!r}; end it in .csv or .jsonl")
    return ChannelConfig(
        channel=channel, adapter=adapter, url=url.rstrip("/") if url else None,
        api_key_env=table.get("api_key_env"), secret_env=table.get("secret_env"),
        account_sid_env=table.get("account_sid_env"), auth_token_env=table.get("auth_token_env"),
        project_id=table.get("project_id"), path=table.get("path"), sender=table.get("from"),
        status_callback=table.get("status_callback"), platform=table.get("platform"),
        rate_per_second=None if table.get("rate_per_second") is None else float(table["rate_per_second"]),
        concurrency=int(table.get("concurrency", 10)), timeout_seconds=float(table.get("timeout_seconds", 10.0)),
        max_attempts=table.get("max_attempts"), batch_size=table.get("batch_size"), source=source)


def load_providers(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, ChannelConfig]:
    """Read and check a providers TOML file (or the same structure as a dict).

    Returns channel -> :class:`ChannelConfig`.  Raises :class:`ConfigError` naming the
    file, channel and key for a missing file, bad TOML, unknown channel or key, or a
    bad value.  Does not read the environment (see :func:`build_adapter`).
    """
    if isinstance(source, Mapping):
        doc, where = dict(source), "providers"
    else:
        path = Path(source)
        where = str(path)
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"providers file {path} does not exist; pass --providers with a TOML file "
                              "like examples/providers.local.toml") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"providers file {path} cannot be read ({type(exc).__name__}); "
                              "check the path and its permissions") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"providers file {path} is not valid TOML: {exc}; fix it and run again") from None
    channels = doc.get("channels", doc if doc and all(k in CHANNELS for k in doc) else None)
    extra = sorted(set(doc) - {"channels"}) if "channels" in doc else []
    if extra:
        raise ConfigError(f"{where} has a top-level key '{extra[0]}'; a providers file only has "
                          "[channels.NAME] tables")
    if not isinstance(channels, Mapping) or not channels:
        raise ConfigError(f"{where} has no [channels.NAME] tables; add one per channel you send on "
                          f"({', '.join(CHANNELS)})")
    out: dict[str, ChannelConfig] = {}
    for name, table in channels.items():
        if name not in CHANNELS:
            raise ConfigError(f"{where} has [channels.{name}]; channels are {', '.join(CHANNELS)}")
        out[name] = _check(name, table, where)
    return out


def _secret(cfg: ChannelConfig, key: str) -> Secret:
    var = getattr(cfg, key)
    value = os.environ.get(var) if var else None
    if not value:
        raise ConfigError(f"{_where(cfg.source, cfg.channel, key)} names the environment variable {var}, "
                          f"which is not set (or empty); export {var} before sending")
    return Secret(value, var)


def _adapter_class(name: str) -> type:
    """The class of a provider adapter, from its module ``adapters.<name>`` (``ADAPTERS`` lists them).

    Adapters depend on :mod:`engine.sending.protocol`; the engine finds them by name
    here, so no engine module imports ``adapters`` statically.
    """
    module_name, class_name = ADAPTER_CLASSES[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def build_adapter(cfg: ChannelConfig, *, session=None) -> Adapter:
    """The adapter for one checked channel, secrets read from the environment now.

    ``session``: an ``aiohttp.ClientSession`` to borrow (not closed by the adapter).
    """
    timeout = cfg.timeout_seconds
    if cfg.adapter == "webhook":
        return _adapter_class("webhook")(cfg.url, _secret(cfg, "secret_env"), timeout=timeout, session=session)
    if cfg.adapter == "sendgrid":
        return _adapter_class("sendgrid")(cfg.url, _secret(cfg, "api_key_env"), sender=cfg.sender or "winback@example.com",
                               batch_size=cfg.batch_size or 1000, timeout=timeout, session=session)
    if cfg.adapter == "twilio":
        return _adapter_class("twilio")(cfg.url, _secret(cfg, "account_sid_env"), _secret(cfg, "auth_token_env"),
                             sender=cfg.sender or "+15550000000", status_callback=cfg.status_callback,
                             timeout=timeout, session=session)
    if cfg.adapter == "fcm":
        return _adapter_class("fcm")(cfg.url, cfg.project_id, _secret(cfg, "api_key_env"), timeout=timeout, session=session)
    if cfg.adapter == "file":
        return _adapter_class("file")(cfg.path, batch_size=cfg.batch_size or 1000)
    if cfg.adapter == "ads":
        return _adapter_class("ads")(cfg.path, platform=cfg.platform, batch_size=cfg.batch_size or 1000)
    raise ConfigError(f"unknown adapter {cfg.adapter!r}")  # pragma: no cover - checked on load
