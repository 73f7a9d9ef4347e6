"""`python -m deploylib` is the `mcp-deploy` console script."""

from .cli import main

main()
