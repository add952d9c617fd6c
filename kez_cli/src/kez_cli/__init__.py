"""The `kez` command line."""
