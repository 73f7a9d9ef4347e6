"""Fleet-over-SSH tests. A package so that its conftest is imported as `fleet.conftest`: a second
top-level `conftest` module would replace tests/conftest.py for the `from conftest import ...`
in the tests collected after this directory."""
