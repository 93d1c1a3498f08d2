"""Does the Gemini API have the model asked for?  One ``GET models/NAME``, before any
sandbox starts, so a mistyped name is one line with the nearest real name instead of
a 404 after the sandbox is up.

Only a 404 that names the model stops the run.  Anything else (a key without
permission to read models, a 5xx, a proxy that serves generateContent but not
``models``) lets it go on, as before: generateContent may still work.  The
lookup is tried once, within 5 s, not with the client's retries.
The listing that suggests a name is asked for only when the model is missing.
"""

from __future__ import annotations

import difflib
import itertools

import httpx2
from google import genai
from google.genai import errors, types

from ..errors import InputError

# One attempt, 5 s: a lookup that fails for any reason other than "no such model" is skipped.
_ONCE = types.HttpOptions(timeout=5_000, retry_options=types.HttpRetryOptions(attempts=1))
_SKIPPED = (errors.APIError, httpx2.HTTPError, OSError, ValueError)
MAX_LISTED = 1000  # models read from the listing for a suggestion (the API has a few dozen)


def check_model(client: genai.Client, name: str) -> None:
    """InputError (one line, with a suggestion when one is close) when the API has no such model."""
    try:
        client.models.get(model=name, config=types.GetModelConfig(http_options=_ONCE))
    except errors.ClientError as exc:
        if not _no_such_model(exc, name):
            return
        names = listed_models(client)
        if _bare(name) not in names:  # listed yet not found: let generateContent say what is wrong
            raise InputError(missing_model_message(name, names)) from None
    except _SKIPPED:
        pass


def _no_such_model(exc: errors.ClientError, name: str) -> bool:
    # The API's 404 names the model ("models/NAME is not found for API version ...");
    # a proxy without the route says "Method not found" or something without the name.
    message = exc.message or ""
    return exc.code == 404 and _bare(name) in message and "method not found" not in message.lower()


def _bare(name: str) -> str:
    return name.removeprefix("models/")


def listed_models(client: genai.Client) -> list[str]:
    """The names (without ``models/``) of the models that generate content; [] if the listing fails."""
    try:
        pager = client.models.list(config=types.ListModelsConfig(page_size=MAX_LISTED, http_options=_ONCE))
        models = list(itertools.islice(pager, MAX_LISTED))
    except _SKIPPED:
        return []
    return [_bare(m.name) for m in models
            if m.name and (not m.supported_actions or "generateContent" in m.supported_actions)]


def missing_model_message(name: str, names: list[str]) -> str:
    """The one line for a model the API does not have, ``names`` being the ones it lists."""
    bare = _bare(name)
    # A name cut short ("gemini-3-flash") means the one it starts; else the closest, compared
    # without the "gemini-" every name shares (which would make any two look alike).
    longer = sorted(n for n in names if n.startswith(bare + "-"))
    family = {n.removeprefix("gemini-"): n for n in names}
    close = longer or [family[n] for n in difflib.get_close_matches(bare.removeprefix("gemini-"), list(family),
                                                                    n=1, cutoff=0.6)]
    if close:
        return f"Gemini has no model {bare!r}: did you mean {close[0]}?"
    examples = sorted((n for n in names if n.startswith("gemini-")), reverse=True)[:3]
    if examples:
        return f"Gemini has no model {bare!r}: use one the API lists, e.g. {', '.join(examples)}"
    return f"Gemini has no model {bare!r}: check the name (e.g. gemini-3-flash-preview)"
