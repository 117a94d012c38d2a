"""Which names hold secrets, and how their values are hidden: ONE rule for every layer.

Used wherever opsctl shows or keeps something a user configured: stage logs (the
values of secret-looking environment variables), the run store (params with
secret-looking names), ``opsctl data remote list`` (DVC remote options, from
``.dvc/config`` and ``.dvc/config.local`` alike) and error messages that name a
remote's URL. Imports nothing, so any layer may use it (like :mod:`opsctl.errors`).

The rule, on a name such as ``AWS_SECRET_ACCESS_KEY``, ``sas_token``, ``db.password``
or ``accessKeyId``: split it into lowercase words (at ``_ - .``, spaces and camelCase
humps), then

1. a word that IS a secret makes the name secret: ``password passwd passphrase
   secret secrets token credential credentials key signature sig``, a compound
   that ends in one of the long ones (``pgpassword``, ``authtoken``,
   ``clientsecret``), the compounds ``apikey accesskey secretkey privatekey
   accountkey``, the words ``connection string`` side by side (Azure's
   ``connection_string``), and ``pwd`` inside a longer name (``MYSQL_PWD``; the
   shell's ``PWD`` alone is the working directory);
2. unless the name is a switch ABOUT the secret, not the secret: its first word is
   ``ask use allow exclude enable disable no skip require is has``
   (``ask_password``, ``exclude_environment_credential``);
3. or it names where the secret is or what shape it has, not its value: its last
   word is ``path file dir command cmd url uri endpoint name type method header
   length size count limit ttl timeout expiry expires expiration algorithm format``
   (``key_path``, ``gdrive_user_credentials_file``, ``bearer_token_command``,
   ``DB_PASSWORD_FILE``, ``max_token_length``).

Words, not substrings: ``MAX_TOKENS``, ``TOKENIZERS_PARALLELISM``, ``KEYBOARD`` or
``monkey`` are not secrets (a substring rule replaced every ``true`` in a log by ***).
Key ids (``access_key_id``, ``oss_key_id``) are masked: AWS asks for them to be kept
private; the KMS ``sse_kms_key_id`` goes along with them, which costs nothing.
``tests/cli/test_secrets.py`` holds every option DVC's remotes define to this rule.

URLs are masked too, wherever they appear: the password of ``scheme://user:pass@host``
becomes ``***`` and so does the value of a query parameter whose name is a secret
(an Azure SAS URL's ``sig=``, ``?token=``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

MASK = "***"

SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "credential",
        "credentials",
        "key",
        "signature",
        "sig",
    }
)
_SECRET_SUFFIXES = ("password", "passwd", "passphrase", "secret", "token")  # pgpassword, authtoken, clientsecret
_SECRET_COMPOUNDS = frozenset({"apikey", "accesskey", "secretkey", "privatekey", "accountkey"})
_SECRET_PHRASES = (("connection", "string"),)
_SWITCH_WORDS = frozenset({"ask", "use", "allow", "exclude", "enable", "disable", "no", "skip", "require", "is", "has"})
_ABOUT_WORDS = frozenset(
    {
        "path",
        "file",
        "dir",
        "command",
        "cmd",
        "url",
        "uri",
        "endpoint",
        "name",
        "type",
        "method",
        "header",
        "length",
        "size",
        "count",
        "limit",
        "ttl",
        "timeout",
        "expiry",
        "expires",
        "expiration",
        "algorithm",
        "format",
    }
)
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_MIN_VALUE = 4  # shorter values are too common to replace in a log line ("1", "yes")


def words(name: str) -> list[str]:
    """``AWS_SECRET_ACCESS_KEY`` -> aws secret access key; ``accessKeyId`` -> access key id."""
    return [w.lower() for w in _WORD.findall(name)]


def looks_secret(name: str) -> bool:
    """Whether a variable, option or param called ``name`` holds a secret (see the module's rule)."""
    parts = words(name)
    if not parts or parts[0] in _SWITCH_WORDS or parts[-1] in _ABOUT_WORDS:
        return False
    for word in parts:
        if word in SECRET_WORDS or word in _SECRET_COMPOUNDS or word.endswith(_SECRET_SUFFIXES):
            return True
    if "pwd" in parts and len(parts) > 1:
        return True
    return any(parts[i : i + len(p)] == list(p) for p in _SECRET_PHRASES for i in range(len(parts)))


# scheme://user:password@ — the password is what is hidden; the user stays (it says whose account).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:)(?P<secret>[^\s/@]+)(?=@)")
_QUERY_VALUE = re.compile(r"(?P<head>[?&;](?P<name>[^\s=&;#]+)=)(?P<value>[^\s&;#]*)")


def mask_url(text: str) -> str:
    """A URL (or any text holding URLs) with passwords and secret query values replaced:
    ``https://ana:pw@host/x?sig=abc&v=1`` -> ``https://ana:***@host/x?sig=***&v=1``."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: m["head"] + MASK, text)
    if "://" in text:
        text = _QUERY_VALUE.sub(lambda m: m["head"] + (MASK if looks_secret(m["name"]) else m["value"]), text)
    return text


def mask_value(name: str, value: object) -> object:
    """``value`` as it may be shown or kept under ``name``: *** for a secret name, a string with
    its URLs masked, anything else as it is."""
    if looks_secret(name):
        return MASK
    return mask_url(value) if isinstance(value, str) else value


def mask_mapping(values: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """A copy of ``values`` (flat ``a.b`` keys or nested dicts) with each leaf masked by its
    full dotted key: ``{"db": {"password": "x", "host": "h"}}`` -> password ***, host kept."""
    masked: dict[str, object] = {}
    for key, value in values.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            masked[key] = mask_mapping(value, full)
        else:
            masked[key] = mask_value(full, value)
    return masked


def masker(env: Mapping[str, str]) -> Callable[[str], str]:
    """A function that hides, in a log line, the values of ``env``'s secret-looking variables,
    the passwords of URLs held in any of its variables, and any URL's password or secret query."""
    values = {v for k, v in env.items() if looks_secret(k)}
    for value in env.values():
        if "://" in value:
            values.update(m["secret"] for m in _USERINFO.finditer(value))
    secrets = sorted((v for v in values if len(v) >= _MIN_VALUE), key=len, reverse=True)

    def mask(line: str) -> str:
        for value in secrets:
            if value in line:
                line = line.replace(value, MASK)
        return mask_url(line)

    return mask
