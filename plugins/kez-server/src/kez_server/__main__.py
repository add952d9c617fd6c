"""`python -m kez_server` is `kez-server`."""

from .cli import main

main()
