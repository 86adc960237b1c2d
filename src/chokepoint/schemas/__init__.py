"""Bundled copies of the contract JSON Schemas (package data)."""
