"""The HTTP API: request and response models, the app (auth, error handlers), the chat routes, the admin routes and
the Prometheus metrics."""
