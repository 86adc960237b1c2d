"""The service adapter: HTTP API, web page, API keys and the tamper-evident audit log."""
