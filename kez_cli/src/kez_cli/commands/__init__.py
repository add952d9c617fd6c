"""Built-in command groups of the `kez` CLI."""
