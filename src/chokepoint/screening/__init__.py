"""Party screening: list loaders, name normalisation, matching and the engine hook."""
