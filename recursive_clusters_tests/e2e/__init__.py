"""End-to-end tests: the Dagster webserver and daemon, driven through GraphQL and a browser."""
