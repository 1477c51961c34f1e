"""The SQL HTTP API: governed, read-only SQL over the lake for dashboards and notebooks.

See :mod:`abasto.api.app` for the endpoints and :mod:`abasto.api.tokens` for who may call them.
"""

from abasto.api.app import create_app
from abasto.api.metrics import ApiMetrics
from abasto.api.query import ApiLimits, QueryTimeoutError
from abasto.api.tokens import ApiToken, TokenStore, token_file

__all__ = [
    "ApiLimits",
    "ApiMetrics",
    "ApiToken",
    "QueryTimeoutError",
    "TokenStore",
    "create_app",
    "token_file",
]
