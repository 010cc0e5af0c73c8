"""User queries and mutations."""

from __future__ import annotations

import strawberry

from gql_api.graphql.context import Context
from gql_api.graphql.types import User


@strawberry.type
class UserQuery:
    @strawberry.field(description="The signed-in user; null when anonymous.")
    def me(self, info: strawberry.Info[Context, None]) -> User | None:
        viewer = info.context.current_viewer()
        return User.from_row(viewer.user) if viewer is not None else None
