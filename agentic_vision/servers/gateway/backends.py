"""Which model a code-execution request runs on, with the request's settings.

A model name without a route is Gemini through google-genai, at the
gateway's upstream with its own key (or the client's, forwarded); a
``--route`` sends it to any backend ``get_model`` knows.  Settings from the
request that the backend cannot honour are a 400, not silently dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import pydantic
from google import genai
from google.genai import types

from ...models import get_model
from ...models.base import Model
from ...models.gemini import GeminiModel, make_client
from ...models.thinking import BUDGETS
from .config import GatewayConfig
from .errors import GatewayError, bad_request

# generationConfig keys an OpenAI-compatible backend takes, and the name it knows them by.
_OPENAI_SETTINGS = {"topP": "top_p", "seed": "seed", "stopSequences": "stop", "presencePenalty": "presence_penalty",
                    "frequencyPenalty": "frequency_penalty"}
_TOLERATED = {"mediaResolution"}  # a request for more care, which a local model may ignore


class Backends:
    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._clients: OrderedDict[tuple[str, str], genai.Client] = OrderedDict()
        self._lock = threading.Lock()

    def gemini_key(self, client_key: str | None) -> str:
        if self.config.upstream_key:
            return self.config.upstream_key
        if client_key and not self.config.authenticates:
            return client_key
        raise GatewayError(503, "the gateway has no Gemini API key: start it with GEMINI_API_KEY set "
                           "(with --auth-key or --client-keys, clients' keys are not forwarded).", "FAILED_PRECONDITION")

    def client(self, key: str, base_url: str) -> genai.Client:
        """One client per key and URL, so connections are reused across requests."""
        with self._lock:
            client = self._clients.get((key, base_url))
            if client is None:
                client = make_client(api_key=key, base_url=base_url, retries=2)
                self._clients[(key, base_url)] = client
                while len(self._clients) > 32:
                    self._clients.popitem(last=False)
            else:
                self._clients.move_to_end((key, base_url))
            return client

    def model(self, name: str, body: dict, client_key: str | None) -> Model:
        check_tool_config(body)
        route = self.config.routes.get(name)
        spec = route.model if route else name
        prefix = spec.partition(":")[0] if ":" in spec else ""
        if prefix in ("openai", "ollama"):
            tools = built_in_tools(body)
            if tools:
                raise bad_request(f"model {name!r} runs on {spec}, which has no {', '.join(tools)} tool; "
                                  "only codeExecution is served for it.")
            if body.get("safetySettings"):
                raise bad_request(f"safetySettings cannot be honoured by {spec} (model {name!r}); leave them out.")
            options = openai_options(body.get("generationConfig") or {}, spec)
            if route.base_url:
                options["base_url"] = route.base_url
            return get_model(spec, **options)
        gemini_name = spec.removeprefix("gemini:")
        base_url = (route.base_url if route and route.base_url else None) or self.config.upstream_url
        client = self.client(self.gemini_key(client_key), base_url)
        return GeminiModel(gemini_name, client=client, config=gemini_config(body),
                           tools=[types.Tool.model_validate(t) for t in built_in_tools(body).values()])


def check_tool_config(body: dict) -> None:
    tool_config = body.get("toolConfig") or {}
    calling = tool_config.get("functionCallingConfig") or {}
    if set(tool_config) - {"functionCallingConfig"} or calling.get("mode", "AUTO") not in ("AUTO", "MODE_UNSPECIFIED"):
        raise bad_request("toolConfig cannot be honoured in a codeExecution request: the loop decides when "
                          "code runs; leave toolConfig out.")
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict):
            raise bad_request("Invalid value at 'tools': each tool must be a JSON object.")
        if tool.get("functionDeclarations"):
            raise bad_request("functionDeclarations cannot be served together with codeExecution here: "
                              "send code-execution and function-calling requests separately.")


def built_in_tools(body: dict) -> dict[str, dict]:
    """Gemini's own tools in the request besides codeExecution, by name."""
    found = {}
    for tool in body.get("tools") or []:
        for key, value in tool.items():
            if key not in ("codeExecution", "functionDeclarations"):
                found[key] = {key: value}
    return found


def gemini_config(body: dict) -> types.GenerateContentConfig | None:
    settings = dict(body.get("generationConfig") or {})
    if settings.get("candidateCount") not in (None, 1):
        raise bad_request("generationConfig.candidateCount must be 1 with codeExecution.")
    if body.get("safetySettings"):
        settings["safetySettings"] = body["safetySettings"]
    if not settings:
        return None
    try:
        return types.GenerateContentConfig.model_validate(settings)
    except pydantic.ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(p) for p in problem.get("loc", ()))
        raise bad_request(f"Invalid value at 'generationConfig.{where}': {problem.get('msg')}.") from None


def openai_options(settings: dict, spec: str) -> dict:
    options: dict = {}
    extra: dict = {}
    for key, value in settings.items():
        if key == "temperature":
            options["temperature"] = value
        elif key == "maxOutputTokens":
            options["max_tokens"] = value
        elif key in _OPENAI_SETTINGS:
            extra[_OPENAI_SETTINGS[key]] = value
        elif key == "candidateCount" and value in (1, None):
            pass
        elif key == "thinkingConfig":
            level = thinking_level(value)
            if level != "default":
                options["thinking"] = level
        elif key not in _TOLERATED:
            raise bad_request(f"generationConfig.{key} cannot be honoured by {spec}; leave it out.")
    if extra:
        options["extra_body"] = extra
    return options


def thinking_level(config) -> str:
    """A Gemini ``thinkingConfig`` as a --thinking level, for an OpenAI-compatible backend.

    ``thinkingLevel`` is taken as it is; ``thinkingBudget`` 0 is off, -1
    (dynamic) the default, and a budget up to Gemini 2.5's low / medium
    budgets of ``--thinking`` (1024 / 8192 tokens), or more, is low / medium /
    high.  ``includeThoughts`` alone asks for nothing more.
    """
    if not isinstance(config, dict):
        raise bad_request("Invalid value at 'generationConfig.thinkingConfig': expected a JSON object.")
    level = config.get("thinkingLevel")
    if level not in (None, "THINKING_LEVEL_UNSPECIFIED"):
        if not isinstance(level, str) or level.upper() not in ("MINIMAL", "LOW", "MEDIUM", "HIGH"):
            raise bad_request(f"Invalid value at 'generationConfig.thinkingConfig.thinkingLevel' ({level!r}): "
                              "use MINIMAL, LOW, MEDIUM or HIGH.")
        return level.lower()
    budget = config.get("thinkingBudget")
    if budget is None or budget == -1:
        return "default"
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < -1:
        raise bad_request("Invalid value at 'generationConfig.thinkingConfig.thinkingBudget': "
                          "a number of tokens, 0 (off) or -1 (dynamic).")
    if budget == 0:
        return "off"
    return next((level for level in ("low", "medium") if budget <= BUDGETS[level]), "high")
