"""The GraphQL schema: types and resolvers per domain (users, auth, MFA, audit, ops), the
request context and the DataLoaders; ``root`` merges the domains' types into one schema."""
