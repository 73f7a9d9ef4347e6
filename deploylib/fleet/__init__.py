"""Many hosts over SSH: the controller (`controller`, `transport`) and what it ships to each host (`agent`).

    controller --ssh--> python3 agent.pyz on each host (the stdlib-only core of deploylib, zipped)
      phase 1, all hosts in parallel: lock, recover, preflight, push missing objects, backup, stage, validate
      phase 2, batch by batch (canary first): commit, verify; then every host waits for "confirm"
      a host that loses its controller before "confirm" undoes its commit (the pipeline's own undo)

Everything imported by `agent` must be stdlib-only: hosts have Python and sshd, nothing else.
"""
