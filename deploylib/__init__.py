"""MCP Deploy: safe, reversible deployment of an MCP server tree into production.

The public API is in `deploylib.operations`; every entry point calls it.
"""

__version__ = "0.1.0"
