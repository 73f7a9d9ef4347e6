"""How a fleet profile names its hosts and where it puts the release, against real test hosts: a
per-host target, `user@host:port`, an alias from ~/.ssh/config, ProxyJump, and strict known_hosts."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from . import hosts
from .conftest import MakeFleet
from .fleetproj import FleetProject, tree

# An ssh config with everything the test hosts need except a Host block naming them: what a user's
# own file would hold. {hosts_blocks} comes first (ssh takes the first value it finds per keyword).
SSH_CONFIG = """\
{hosts_blocks}
Host *
  User {user}
  IdentitiesOnly yes
  IdentityAgent none
  IdentityFile "{identity}"
  UserKnownHostsFile "{known_hosts}"
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking {strict}
  UpdateHostKeys no
  CheckHostIP no
  BatchMode yes
  ConnectTimeout {timeout}
  LogLevel ERROR
"""


def ssh_config(path: Path, fleet: hosts.Fleet, hosts_blocks: str = "", *, user: str = "root",
               known_hosts: Path | None = None, strict: str = "yes") -> Path:
    path.write_text(SSH_CONFIG.format(hosts_blocks=hosts_blocks, user=user, identity=fleet.identity,
                                      known_hosts=known_hosts or fleet.known_hosts, strict=strict,
                                      timeout=hosts.CONNECT_TIMEOUT))
    return path


def accepted_on(host: hosts.Host, port: int, *, peer: str | None = None) -> int:
    """How many sessions the host's sshd accepted for root on `port` (from `peer`, if given), by its
    log: a connection's local port, paired with its acceptance by the client's address and port."""
    log = host.log
    local = {(addr, cport): int(lport) for addr, cport, lport in
             re.findall(r"Connection from (\S+) port (\d+) on \S+ port (\d+)", log)}
    accepted = re.findall(r"Accepted publickey for root from (\S+) port (\d+)", log)
    return sum(1 for addr, cport in accepted if local.get((addr, cport)) == port and peer in (None, addr))


def test_a_per_host_target_deploys_each_host_at_its_own_path_and_leaves_the_other_path_alone(
        fleet: MakeFleet, tmp_path: Path) -> None:
    two = fleet(2)
    host1, host2 = two
    proj = FleetProject(tmp_path / "proj", two, hosts=["host1", {"host": "host2", "target": "/srv/other"}])
    # On each host the other host's path holds a user's files, which the deploy must not touch.
    for host, other in ((host1, "other"), (host2, "mcp")):
        (host.fs / "srv" / other / "data").mkdir(parents=True)
        (host.fs / "srv" / other / "server.py").write_bytes(b"# " + host.name.encode() + b"'s own, not ours\n")
        (host.fs / "srv" / other / "data" / "db").write_bytes(os.urandom(256))
    before = {h.name: tree(h.fs / "srv") for h in two}

    code, out = proj.json("deploy")
    assert code == 0, out
    assert [h["state"] for h in out["hosts"]] == ["new", "new"]
    mine = {"host1": "mcp", "host2": "other"}
    for host in two:
        own, other = host.fs / "srv" / mine[host.name], "other" if mine[host.name] == "mcp" else "mcp"
        deployed = {k: v for k, v in tree(own).items() if not k.endswith("/") and k != "VERSION"}
        assert deployed == proj.expected(), host.name
        assert json.loads((own / "VERSION").read_text())["deploy_id"] == out["fleet_id"]
        after = tree(host.fs / "srv")
        untouched = {k: v for k, v in before[host.name].items() if k.startswith(other + "/") or k == other + "/"}
        assert {k: v for k, v in after.items() if k.startswith(other + "/")} == untouched
        # The release, its backups and its state went beside the host's own target only.
        # (.<target>.backups, .deploy-state, .deploy-lock)
        theirs = [n for n in os.listdir(host.fs / "srv") if n != other]
        assert theirs and all(n == mine[host.name] or n.startswith(f".{mine[host.name]}.") for n in theirs), theirs

    code, status = proj.json("status")
    assert code == 0, status
    # status reads each host at its own target: the release is live there, nothing pending, no drift
    for row in status["hosts"]:
        assert row["release"] == out["fleet_id"] and not row["drift"], row
        assert sum(row["pending"]["counts"][k] for k in ("added", "changed", "removed")) == 0, row


def test_user_at_host_port_specs_connect_as_that_user_to_that_port(fleet: MakeFleet, tmp_path: Path) -> None:
    two = fleet(2)
    host1, host2 = two
    # The config's default user does not exist: only the spec's `root@` can log in; its Port is 22,
    # so host1 is reached on ALT_PORT only because its spec says so.
    config = ssh_config(tmp_path / "ssh_config", two, user="no-such-user-here")
    specs = [f"root@{host1.address}:{hosts.ALT_PORT}", f"root@{host2.address}"]
    proj = FleetProject(tmp_path / "proj", two, hosts=specs, ssh={"config": str(config)})
    code, out = proj.json("deploy")
    assert code == 0, out
    assert sorted(h["host"] for h in out["hosts"]) == sorted(specs)
    for host in two:
        assert proj.managed(host) == proj.expected()
    assert accepted_on(host1, hosts.ALT_PORT) >= 1 and accepted_on(host1, 22) == 0
    assert accepted_on(host2, 22) >= 1 and accepted_on(host2, hosts.ALT_PORT) == 0
    record = proj.history()[-1]
    assert record["ok"] and set(record["hosts"]) == set(specs)


def with_home(home: Path, argv: list[str]) -> list[str]:
    """argv in a private mount namespace whose /etc/passwd gives this user `home`: OpenSSH finds
    ~/.ssh/config through the passwd entry, not $HOME, so this is how a test gives ssh a home of its
    own without touching the real ~/.ssh (the bind mount dies with the process)."""
    me = pwd.getpwuid(os.getuid())
    lines = []
    for line in Path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == me.pw_name:
            fields[5] = str(home)
        lines.append(":".join(fields))
    passwd = home.parent / "passwd"
    passwd.write_text("\n".join(lines) + "\n")
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$1" /etc/passwd && shift && exec "$@"', "with-home", str(passwd), *argv]


def test_a_host_alias_from_the_users_ssh_config_is_honoured(fleet: MakeFleet, tmp_path: Path) -> None:
    one = fleet(1)
    host1 = one[0]
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy2(one.identity, home / ".ssh" / "fleet_key")
    shutil.copy2(one.known_hosts, home / ".ssh" / "fleet_known_hosts")
    # Everything that reaches host1 is in the alias's block: address, port, user, key, known_hosts.
    (home / ".ssh" / "config").write_text(f"""\
Host web-alias
  HostName {host1.address}
  Port {hosts.ALT_PORT}
  User root
  IdentityFile ~/.ssh/fleet_key
  UserKnownHostsFile ~/.ssh/fleet_known_hosts
  IdentitiesOnly yes
  IdentityAgent none
  GlobalKnownHostsFile /dev/null
  ConnectTimeout {hosts.CONNECT_TIMEOUT}
""")
    proj = FleetProject(tmp_path / "proj", one, hosts=["web-alias"])
    del proj.profile["ssh"]  # no `ssh: {config}`: ssh reads the user's own ~/.ssh/config
    proj.write_config()
    argv = [sys.executable, "-m", "deploylib", "deploy", "--json", "--config", str(proj.config), "--profile", "fleet"]
    env = {**os.environ, "HOME": str(home)}  # for the controller's own ~ (ssh ignores it: see with_home)
    proc = subprocess.run(with_home(home, argv), capture_output=True, text=True, timeout=120, cwd=proj.root, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proj.managed(host1) == proj.expected()
    assert accepted_on(host1, hosts.ALT_PORT) >= 1 and accepted_on(host1, 22) == 0


def test_proxyjump_through_one_host_reaches_a_host_this_machine_cannot(fleet: MakeFleet, tmp_path: Path) -> None:
    two = fleet(2)
    host1, host2 = two
    via = two.link(host1, host2)  # host1 reaches host2's address over a link of their own
    config = ssh_config(tmp_path / "ssh_config", two, f"""\
Host host1
  HostName {host1.address}
Host behind
  HostName {host2.address}
  ProxyJump host1
""")
    proj = FleetProject(tmp_path / "proj", two, hosts=["host1", "behind"], ssh={"config": str(config)})
    host2.cut()  # this machine's own way to host2 is gone: only host1's remains
    try:
        direct = subprocess.run(["ssh", "-F", str(config), "-o", "HostName=" + host2.address, "direct", "true"],
                                capture_output=True, text=True, timeout=30)
        assert direct.returncode == 255, direct.stderr
        code, out = proj.json("deploy")
    finally:
        host2.restore()
    assert code == 0, out
    assert [(h["host"], h["state"]) for h in out["hosts"]] == [("behind", "new"), ("host1", "new")]
    for host in two:
        assert proj.managed(host) == proj.expected()
    assert accepted_on(host2, 22, peer=via) >= 1  # host2 saw the session come from host1's side of the link
    assert accepted_on(host2, 22, peer=str(host2.address).rsplit(".", 1)[0] + ".1") == 0


@pytest.mark.parametrize("case", ["missing", "changed"])
def test_a_host_whose_key_is_not_in_known_hosts_is_refused_and_nothing_changes(
        fleet: MakeFleet, tmp_path: Path, case: str) -> None:
    two = fleet(2)
    proj = FleetProject(tmp_path / "proj", two)
    assert proj.json("deploy")[0] == 0
    old = {h.name: tree(h.fs / "srv") for h in two}
    # known_hosts without host2's key ("missing"), or with host1's key under host2's names ("changed":
    # as after a reinstall, or a machine in its place); and a config that would learn new keys: the
    # transport's own StrictHostKeyChecking=yes must win over it (a key is never trusted on first use).
    lines = two.known_hosts.read_text().splitlines()
    host1_key = " ".join(lines[0].split()[1:])
    host2_line = next(line for line in lines if line.startswith("host2,"))
    known = tmp_path / "known_hosts"
    kept = [line for line in lines if line != host2_line]
    if case == "changed":
        kept.append(f"{host2_line.split()[0]} {host1_key}")
    known.write_text("".join(line + "\n" for line in kept))
    known_before = known.read_bytes()
    config = ssh_config(tmp_path / "ssh_config", two, "".join(
        f"Host {h.name}\n  HostName {h.address}\n" for h in two), known_hosts=known, strict="accept-new")
    proj.write_config(ssh={"config": str(config)})
    proj.write_source({"server.py": b"print('v2')\n"})

    proc = proj.cli("deploy")
    assert proc.returncode == 9, proc.stdout + proc.stderr
    said = {"missing": "host2: refused: its host key is not in known_hosts",
            "changed": "host2: refused: its host key is not the one known_hosts holds for it"}[case]
    assert said in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    for host in two:
        assert tree(host.fs / "srv") == old[host.name], host.name  # production, backups, state: all as before
    assert known.read_bytes() == known_before  # nothing learned, nothing replaced
    assert proj.history()[-1]["exit_code"] == 9
