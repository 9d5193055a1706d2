"""guichet-admin: the operators' CLI (dead letters, outbox backlog, consumer lag).

It talks to Kafka and to the services' databases directly and imports no service: only
`shared_models.topics` (topic names) and `guichet_runtime`'s public helpers.
"""
