"""The command-line adapter (typer): the contract's commands."""
