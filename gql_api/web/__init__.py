"""HTTP: the app factory, its middlewares, the GraphQL-over-HTTP and WebSocket entries,
the GraphiQL page."""
