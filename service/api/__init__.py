"""The REST API: Litestar app, routes, schemas, auth, metrics."""
