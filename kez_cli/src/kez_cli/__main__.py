"""`python -m kez_cli` runs the `kez` command."""

from .main import main

main()
