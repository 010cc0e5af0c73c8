"""The GraphQL engine: the request pipeline and its stages (documents and caches, limits and
cost, persisted documents, masking) and the planned executor."""
