"""gql_api: a GraphQL user service on PostgreSQL."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gql_api")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
