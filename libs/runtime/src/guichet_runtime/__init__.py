"""What every guichet unique service runs on: settings, database and unit of work,
transactional outbox and its relay, idempotent consumers with a dead-letter path,
OpenTelemetry tracing, and the HTTP shell with its health probe."""
