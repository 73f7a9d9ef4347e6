"""The pipeline's steps, in order. Each module has NAME, STATE, `run` and `undo`.

`run` takes what earlier steps returned and returns what it makes. `undo` takes
only the operation (its journal record, its store, its paths), because crash
recovery calls it in a fresh process that knows only what was journaled; it
must be idempotent. Their order is in `sequence`; importing this package loads no step (a status
needs only preflight).
"""

