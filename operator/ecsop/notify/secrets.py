"""Secrets of the ``--notifications`` file: ``{env: NAME}`` or ``{file: PATH}``, never inline.

A secret field (a webhook URL, an HMAC key, a token) is resolved while the
file is validated, into a ``SecretStr`` that prints as ``**********``, so it
never reaches a log line, an error message or ``/status``. A secret file must
lie outside the spec directory: that directory is a git checkout anyone with
a pull request can write to. The validation context (``ENVIRON``, ``BASE``,
``SPECS``) says where to look; ``ecsop.notify.config.load`` sets it.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationInfo

MAX_SECRET_BYTES = 64 * 1024

ENVIRON = "environ"
"""Validation context key: the environment secrets named ``{env: ...}`` are read from."""
BASE = "base"
"""Validation context key: the directory relative ``{file: ...}`` paths start from."""
SPECS = "specs"
"""Validation context key: the spec directory, where no secret file may lie."""


def _resolve(value: Any, info: ValidationInfo, *, plain_allowed: bool) -> SecretStr:
    if isinstance(value, SecretStr):  # built in code, already resolved
        return value
    if plain_allowed and isinstance(value, str):
        return SecretStr(value)
    if not isinstance(value, dict) or set(value) not in ({"env"}, {"file"}):
        plain = " or a plain string" if plain_allowed else " (secrets are never written here)"
        raise ValueError(f"must be {{env: VARIABLE}} or {{file: PATH}}{plain}")
    context = info.context or {}
    if "env" in value:
        name = value["env"]
        environ: Mapping[str, str] = context.get(ENVIRON, os.environ)
        if not isinstance(name, str) or not name:
            raise ValueError("env must name an environment variable")
        if not environ.get(name, "").strip():
            raise ValueError(f"environment variable {name} is not set (or empty)")
        return SecretStr(environ[name].strip())  # as a file's: a stray newline breaks HTTP
    given = value["file"]
    if not isinstance(given, str) or not given:
        raise ValueError("file must be a path")
    path = Path(context.get(BASE, ".")) / given
    specs: Path | None = context.get(SPECS)
    if specs is not None and inside(path, specs):
        raise ValueError(f"secret file {given} is inside the spec directory {specs}; move it out")
    try:
        data = path.read_bytes()[: MAX_SECRET_BYTES + 1]
    except OSError as exc:
        raise ValueError(f"cannot read secret file {given}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise ValueError(f"secret file {given} is larger than {MAX_SECRET_BYTES} bytes")
    text = data.decode("utf-8", errors="replace").strip()
    if not text:
        raise ValueError(f"secret file {given} is empty")
    return SecretStr(text)


def _secret(value: Any, info: ValidationInfo) -> SecretStr:
    return _resolve(value, info, plain_allowed=False)


def _secret_or_plain(value: Any, info: ValidationInfo) -> SecretStr:
    return _resolve(value, info, plain_allowed=True)


def _http_url(value: SecretStr) -> SecretStr:
    """An absolute http(s) URL; the value itself never appears in the message."""
    parts = urllib.parse.urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


Secret = Annotated[SecretStr, BeforeValidator(_secret)]
"""A value read from ``{env: NAME}`` or ``{file: PATH}``; never written in the file."""
SecretUrl = Annotated[SecretStr, BeforeValidator(_secret), AfterValidator(_http_url)]
Url = Annotated[SecretStr, BeforeValidator(_secret_or_plain), AfterValidator(_http_url)]
"""A URL that may be written plainly, or kept secret like ``Secret``."""


def _inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def inside(path: Path, directory: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies in ``directory``."""
    return path.resolve().is_relative_to(directory.resolve())
