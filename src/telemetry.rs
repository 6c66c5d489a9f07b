//! tracing setup, Prometheus registry, and the /metrics /healthz /readyz server.
