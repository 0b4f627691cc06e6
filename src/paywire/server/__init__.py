"""The provider's side: charge per request with one ASGI middleware."""

from paywire.server.middleware import PaymentMiddleware
from paywire.server.routes import PricedRoute, parse_routes

__all__ = ["PaymentMiddleware", "PricedRoute", "parse_routes"]
