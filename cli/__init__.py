"""The `coursewise` command: ingest catalogue files, manage API keys and ledger tasks, reindex."""
