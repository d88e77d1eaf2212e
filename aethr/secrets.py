"""The run's secret set, and the one mask every text goes through where it enters a run.

`settings.load` builds the set once, from what it read (see `collect`); the runner hands
it to the secret policy (`sensitive.use`) and to the backends, which mask at the door
(`backends.masking`). Nothing here reads the environment.

What counts as a secret (each value at least `MIN_LENGTH` characters, so that a short
value such as `1` or `true` does not blank out ordinary words):
- the value of every variable whose name says it holds a key (`is_secret_name`);
- the value of every role's `api_key_env`, whatever the variable is called;
- every value in the project's `.env`, except a plain number or a single lowercase word
  (`production`, `localhost`): those are settings, and masking them would hide prose;
- the password, and the `user:password` pair, of every URL among all of those and among
  the environment's values (`postgres://app:pw@db/x`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MIN_LENGTH = 8
MASK = "****"
_SECRET_SUFFIXES = (
    "_KEY",
    "_KEYS",
    "_APIKEY",
    "_TOKEN",
    "_SECRET",
    "_PASSWORD",
    "_PASSWD",
    "_PASS",
    "_PWD",
    "_CREDENTIAL",
    "_CREDENTIALS",
)
_SECRET_NAMES = {"TOKEN", "SECRET", "PASSWORD", "APIKEY", "API_KEY"}
_URL_CREDENTIALS = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^\s:/?#@]*):([^\s/?#@]+)@")
_PLAIN_SETTING = re.compile(r"[a-z]+|[0-9]+(\.[0-9]+)?")


def is_secret_name(name: str) -> bool:
    """Whether a variable's name says it holds a key (`*_KEY`, `*_TOKEN`, `*_PASSWORD`…)."""
    upper = name.upper()
    return upper in _SECRET_NAMES or upper.endswith(_SECRET_SUFFIXES)


def url_credentials(value: str) -> list[str]:
    """The passwords, and `user:password` pairs, of the URLs in `value`."""
    found: list[str] = []
    for match in _URL_CREDENTIALS.finditer(value):
        user, password = match.group(1), match.group(2)
        found += [password, f"{user}:{password}"] if user else [password]
    return found


def collect(environment: Mapping[str, str], key_variables: Iterable[str], dotenv: Mapping[str, str]) -> Secrets:
    """The run's secrets from the environment (after `.env` is loaded into it), the roles'
    `api_key_env` variables, and the values of the project's `.env` file."""
    values = [v for k, v in environment.items() if is_secret_name(k)]
    values += [environment[name] for name in key_variables if name in environment]
    values += [v for v in dotenv.values() if not _PLAIN_SETTING.fullmatch(v)]
    for value in [*environment.values(), *dotenv.values()]:
        if "://" in value:
            values += url_credentials(value)
    return Secrets(values)


class Secrets:
    """A run's secret values. `mask` replaces each with `****`, longest first, so a value
    that holds a shorter one (a URL and its password) is masked whole."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        kept = {v for v in values if len(v.strip()) >= MIN_LENGTH}
        self.values: tuple[str, ...] = tuple(sorted(kept, key=lambda v: (-len(v), v)))
        self.longest = len(self.values[0]) if self.values else 0
        self._pattern = re.compile("|".join(map(re.escape, self.values))) if self.values else None
        self._firsts = {value[0] for value in self.values}

    def __repr__(self) -> str:  # never the values, whatever prints a Settings
        return f"Secrets({len(self.values)} value(s))"

    def __bool__(self) -> bool:
        return bool(self.values)

    def mask(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def found_in(self, data: bytes) -> bool:
        return any(value.encode("utf-8", "surrogateescape") in data for value in self.values)

    def held_back(self, text: str) -> int:
        """How many characters at the end of `text` begin a secret (and might be followed by
        the rest of it in the next chunk): at most the longest secret's length minus one."""
        tail = text[-(self.longest - 1) :] if self.longest > 1 else ""
        for start in range(len(tail)):  # earliest start first: the longest candidate wins
            if tail[start] not in self._firsts:
                continue
            rest = tail[start:]
            if any(value.startswith(rest) for value in self.values):
                return len(rest)
        return 0

    def stream(self) -> StreamMask:
        return StreamMask(self)


class StreamMask:
    """Masks a text that arrives in chunks, so a secret split across two chunks is caught:
    the end of a chunk that could begin a secret is held back until the next chunk (or
    `flush`, at the end). Only a possible beginning is held, so text shows as it comes."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets
        self.pending = ""

    def feed(self, chunk: str) -> str:
        """The part of `pending + chunk` that is safe to show now, masked."""
        text = self.secrets.mask(self.pending + chunk)
        hold = self.secrets.held_back(text)
        self.pending = text[len(text) - hold :] if hold else ""
        return text[: len(text) - hold]

    def flush(self) -> str:
        """What was held back: at the end of the stream it can no longer become a secret."""
        rest, self.pending = self.pending, ""
        return rest
