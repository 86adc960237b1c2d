"""Rule files: the regulation as dated, cited data, with their schema and loader."""
