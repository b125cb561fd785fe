"""Secret scrubbing: every value of a credential-like environment variable becomes ``***`` in what a
report run writes (notebooks, HTML pages, log lines, summaries).

Part of :mod:`research_lib.reporting`; :mod:`research_lib.reporting.runner` re-exports every name.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from research_lib.reporting.results import _write_text

#: Environment variables whose values are always treated as secrets, besides the name patterns below.
SECRET_ENV_NAMES = ("TRADIER_TOKEN", "POLYGON_API_KEY")


_SECRET_NAME_RE = re.compile(r"(?i)(TOKEN|SECRET|PASSW(OR)?D|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL)")


#: Shorter values are not scrubbed (they would match ordinary text); real credentials are longer.
MIN_SECRET_LENGTH = 6


def secret_values(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Values of credential-like environment variables (see the module docstring), longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items()
              if (k in SECRET_ENV_NAMES or _SECRET_NAME_RE.search(k)) and v and len(v) >= MIN_SECRET_LENGTH}
    return tuple(sorted(values, key=len, reverse=True))


def scrub_secrets(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every secret replaced by ``***``, in its raw, URL-, JSON- and HTML-escaped forms."""
    # lazy for start-up time: the HTTP client, the store and the model load when a step needs them
    from research_lib.data.sources.http import redact

    secrets = secret_values() if secrets is None else tuple(secrets)
    if not secrets:
        return text
    forms: set[str] = set()
    for s in secrets:
        forms.update({s, json.dumps(s)[1:-1], html.escape(s), html.escape(json.dumps(s)[1:-1])})
    return redact(text, forms)


def _scrub_file(path: Path, secrets: tuple[str, ...]) -> None:
    if not secrets or not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    clean = scrub_secrets(text, secrets)
    if clean != text:
        _write_text(path, clean)
