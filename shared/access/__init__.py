"""API keys, scopes and per-caller rate limits."""
