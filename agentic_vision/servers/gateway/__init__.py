"""A Gemini-API gateway: unchanged ``codeExecution`` client code runs on the local loop.

``create_app(GatewayConfig(...))`` is the ASGI app; ``agentic-vision serve`` runs it
on uvicorn.
"""

from .app import create_app
from .config import GatewayConfig, Route, parse_route
from .serve import BackgroundGateway, serve

__all__ = ["BackgroundGateway", "GatewayConfig", "Route", "create_app", "parse_route", "serve"]
