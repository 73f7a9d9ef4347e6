"""`invoke` entry point for this repo.

The tasks live in the package (deploylib/tasks.py) so that the installed
`mcp-deploy` console script runs exactly the same collection.
"""

from deploylib.tasks import namespace  # noqa: F401  (invoke looks for `namespace`)
