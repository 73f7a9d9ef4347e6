"""Real test hosts for the fleet-over-SSH tests, built from Linux namespaces.

Each host is a network namespace (``mcpd-<run>-<i>``) joined to the root namespace by a veth
pair on a private /30 (10.213.<k>.0/30: .1 root side, .2 the host), running Debian's sshd inside
a mount namespace of its own. In that mount namespace a per-host directory from the test's tmp
dir is bound over the parent of the target path (``/srv`` for ``/srv/mcp``), so every host has
the same target path on different real storage, and renames beside the target stay on one
filesystem, as on a real host. /tmp, /var/tmp and /root are per-host too (what a remote command
writes there lands in the test's tmp dir, not on this machine) and /run is a fresh tmpfs (sshd
needs /run/sshd). None of it is visible from the root namespace; nothing outside the test's
directories is written besides the namespaces, links and routes themselves, which teardown
removes and then checks are gone.

Clients reach a host by alias (``ssh -F <ssh_config> host1``) with a generated key and a
known_hosts file holding each host's real key: strict checking, no trust on first use. Every sshd
listens on port 22 and on ALT_PORT (known_hosts has ``[address]:2222`` too), and Fleet.link(a, b)
joins two hosts' namespaces directly, so that b can be reached through a (ProxyJump).

Also a small command line: ``python3 tests/fleet/hosts.py bench [N]`` times creating and tearing
down N hosts; ``python3 tests/fleet/hosts.py sweep`` removes what a SIGKILLed run left behind.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIX = "mcpd-"
SUBNET = "10.213"
CLAIM_METRIC = 4242  # our "unreachable" route per /30: the claim on it and the leak guard
SSHD = "/usr/sbin/sshd"  # sshd re-executes itself, so it must be started by absolute path
TARGET = "/srv/mcp"
ALT_PORT = 2222  # every sshd listens here too, for `user@host:port` and `Port` in an ssh config
JUMP_NET = "169.254.213"  # host-to-host links (Fleet.link): inside the hosts' namespaces only
CONNECT_TIMEOUT = 5
# What sshd puts on PATH for a command (Debian's default); where a masked python3 could hide.
SESSION_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
NO_PYTHON = '#!/bin/sh\necho "sh: 1: ${0##*/}: not found" >&2\nexit 127\n'

Command = str | Sequence[str]
CREATED: list[str] = []  # run ids of every Fleet entered in this process, for leftover checks


class FleetError(RuntimeError):
    """Setting up or tearing down test hosts failed (not a reason to skip: the machine is wrong)."""


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30,
        input: str | None = None) -> subprocess.CompletedProcess[str]:
    """A local command, captured; with check, a failure raises with its stderr in the message."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise FleetError(f"{shlex.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["ip", *args], check=check)


# --- can this machine do it at all? -------------------------------------------------------------

_unavailable: list[str | None] = []


def unavailable() -> str | None:
    """Why fleet tests cannot run here (not root, or namespaces refused: an unprivileged
    container), else None. A missing sshd is not a reason: that raises, so CI cannot skip."""
    if not _unavailable:
        _unavailable.append(_probe())
    return _unavailable[0]


def _probe() -> str | None:
    if os.geteuid() != 0:
        return "fleet test hosts need root (network and mount namespaces)"
    missing = [tool for tool in ("ip", "unshare", "nsenter", "ssh", "ssh-keygen") if not shutil.which(tool)]
    if not Path(SSHD).is_file():
        missing.append(SSHD)
    if missing:
        raise FleetError(f"missing {', '.join(missing)}: run .ci/install-system-deps")
    if run(["getent", "passwd", "sshd"], check=False).returncode != 0:
        raise FleetError("no 'sshd' privilege separation user: run .ci/install-system-deps")
    name = f"{PREFIX}probe{secrets.token_hex(3)}"
    added = ip("netns", "add", name, check=False)
    if added.returncode != 0:
        if "Operation not permitted" in added.stderr or "Permission denied" in added.stderr:
            return f"ip netns add refused here: {added.stderr.strip()}"
        raise FleetError(f"ip netns add: {added.stderr.strip()}")
    ip("netns", "del", name)
    return None


# --- addresses ----------------------------------------------------------------------------------

def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix routed or configured here (all tables), except the default route."""
    nets: list[ipaddress.IPv4Network] = []
    for route in json.loads(ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        if route.get("dst", "default") != "default":
            nets.append(ipaddress.IPv4Network(route["dst"], strict=False))
    return [n for n in nets + _address_networks() if n.prefixlen > 0]


def _address_networks() -> list[ipaddress.IPv4Network]:
    """The prefixes of the IPv4 addresses on this namespace's links."""
    nets = []
    for link in json.loads(ip("-j", "-4", "addr").stdout or "[]"):
        for addr in link.get("addr_info", []):
            nets.append(ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    return nets


def _claim_subnet(dev: str) -> ipaddress.IPv4Network:
    """A free 10.213.<k>.0/30, its .1 on dev. The claim is an 'unreachable' route for the /30,
    which the kernel refuses twice (so concurrent runs cannot pick the same k) and which catches
    the host's traffic while its link is down instead of letting it leak out by the default route.
    The address goes on first, so sweep() never takes a claim being made for one."""
    taken = _networks_in_use()
    for k in random.sample(range(256), 256):
        net = ipaddress.IPv4Network(f"{SUBNET}.{k}.0/30")
        if any(net.overlaps(t) for t in taken):
            continue
        local = f"{net[1]}/30"
        ip("addr", "add", local, "dev", dev)
        if ip("route", "add", "unreachable", str(net), "metric", str(CLAIM_METRIC), check=False).returncode == 0:
            return net
        ip("addr", "del", local, "dev", dev)
    raise FleetError(f"no free /30 left in {SUBNET}.0.0/16")


# --- one host -----------------------------------------------------------------------------------

SSHD_CONFIG = """\
# a fleet test host: {name} ({netns}); paths are as sshd sees them in its mount namespace
ListenAddress {address}:22
ListenAddress {address}:{alt_port}
HostKey /run/mcpd/ssh_host_ed25519_key
PidFile /run/mcpd/sshd.pid
AuthorizedKeysFile /run/mcpd/authorized_keys
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
# pytest's tmp dirs are not what StrictModes wants; no tty means no utmp/wtmp/lastlog writes
StrictModes no
PermitTTY no
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
MaxStartups 64:30:128
MaxSessions 32
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel VERBOSE
"""

# sshd's way in: SIGKILL when the pytest thread that started it dies, even by SIGKILL (setpriv's
# PR_SET_PDEATHSIG survives the exec of ip and unshare); unshare --kill-child passes that on to
# sshd, pid 1 of the host's own pid namespace, and when pid 1 dies the kernel kills every process
# of the host: nothing outlives pytest. Then its own mount and UTS namespaces, in its netns.
START = ("setpriv", "--pdeathsig", "KILL", "ip", "netns", "exec", "{netns}",
         "unshare", "--mount", "--propagation", "private", "--uts", "--pid", "--fork", "--kill-child",
         "--mount-proc", "--")

# Then, in there: sources under /tmp are bound before /tmp itself is covered.
START_SSHD = """\
set -eu
name=$1 ctl=$2 parent=$3 parent_src=$4 fs=$5
shift 5
echo "$name" > /proc/sys/kernel/hostname
mount -t tmpfs -o mode=0755,size=16m mcpd-run /run
mkdir -p /run/sshd /run/mcpd
mount --bind "$ctl" /run/mcpd
mount --bind "$parent_src" "$parent"
mount --bind "$fs/root" /root
mount --bind "$fs/var/tmp" /var/tmp
mount --bind "$fs/tmp" /tmp
for f in "$@"; do mount --bind /run/mcpd/no-python "$f"; done
exec {sshd} -D -f /run/mcpd/sshd_config -E /run/mcpd/sshd.log
""".format(sshd=SSHD)


def _pythons() -> list[str]:
    """The real files behind every python3 / python3.N a session could find on its PATH."""
    found: set[str] = set()
    for d in SESSION_PATH:
        for p in Path(d).glob("python3*"):
            suffix = p.name.removeprefix("python3")
            if (suffix == "" or suffix[1:].isdigit() and suffix.startswith(".")) and p.exists():
                found.add(os.path.realpath(p))
    return sorted(found)


@dataclass
class Host:
    """One test host. `name` is its ssh alias and hostname (host1...), `root` the real directory
    that the host sees as its target path (/srv/mcp)."""

    name: str
    netns: str
    address: str
    dir: Path
    ssh_config: Path
    target: str
    python: bool = True
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)  # unshare
    sshd_pid: int = 0  # as seen from here; it is pid 1 on the host

    @property
    def fs(self) -> Path:
        """The host's own directories, at their paths on the host: fs/srv, fs/tmp, fs/var/tmp,
        fs/root."""
        return self.dir / "fs"

    @property
    def root(self) -> Path:
        return self.fs / self.target.lstrip("/")

    @property
    def ctl(self) -> Path:
        """sshd's config, keys, pid file and log: /run/mcpd on the host."""
        return self.dir / "sshd"

    @property
    def pid(self) -> int:
        """sshd's pid here: the handle on the host's namespaces (nsenter -t)."""
        assert self.sshd_pid, f"{self.name} is not running"
        return self.sshd_pid

    @property
    def log(self) -> str:
        path = self.ctl / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def ssh_argv(self, cmd: Command, *options: str) -> list[str]:
        """The ssh command line for cmd on this host (for Popen, or to hand to a controller)."""
        remote = cmd if isinstance(cmd, str) else shlex.join(cmd)
        return ["ssh", "-F", str(self.ssh_config), *options, self.name, remote]

    def run(self, cmd: Command, *, input: str | None = None, timeout: float = 30,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """cmd on the host over ssh (a string goes to the remote shell as is; a list is quoted)."""
        return run(self.ssh_argv(cmd), input=input, timeout=timeout, check=check)

    def exec_local(self, cmd: Command, *, input: str | None = None, timeout: float = 30,
                   check: bool = False) -> subprocess.CompletedProcess[str]:
        """cmd inside the host's network, mount and pid namespaces, without ssh: how the host
        itself sees /srv/mcp, its /tmp, its processes and its network, also while cut off."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return run(["nsenter", "-t", str(self.pid), "-n", "-m", "-p", "--wd=/", "--", *argv],
                   input=input, timeout=timeout, check=check)

    def cut(self) -> None:
        """Unplug: the root-side veth goes down. New connections fail at once ('No route to
        host', from the claim route; nothing leaks to the default route); established ones get
        no answer until restore()."""
        ip("link", "set", self.netns, "down")

    def restore(self) -> None:
        """Plug back in; the kernel puts the connected route back, open connections resume."""
        ip("link", "set", self.netns, "up")

    # -- lifecycle, driven by Fleet --

    def prepare(self, client_pub: str) -> str:
        """Directories, host key and sshd config (before any namespace exists); returns the
        known_hosts key text ('ssh-ed25519 AAAA...')."""
        for d in (self.root, self.fs / "root", self.fs / "tmp", self.fs / "var" / "tmp", self.ctl):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.fs / "root", 0o700)
        for tmp in (self.fs / "tmp", self.fs / "var" / "tmp"):
            os.chmod(tmp, 0o1777)
        key = self.ctl / "ssh_host_ed25519_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name, "-f", str(key)])
        (self.ctl / "authorized_keys").write_text(client_pub)
        (self.ctl / "sshd_config").write_text(SSHD_CONFIG.format(name=self.name, netns=self.netns,
                                                                 address=self.address, alt_port=ALT_PORT))
        if not self.python:
            (self.ctl / "no-python").write_text(NO_PYTHON)
            os.chmod(self.ctl / "no-python", 0o755)
        parts = key.with_suffix(".pub").read_text().split()
        return f"{parts[0]} {parts[1]}"

    def start(self) -> None:
        """sshd in the host's namespaces, in a session of its own: a Ctrl-C in the terminal
        reaches pytest only, whose teardown then stops the host."""
        parent = str(Path(self.target).parent)
        args = [self.name, str(self.ctl), parent, str(self.fs / parent.lstrip("/")), str(self.fs),
                *([] if self.python else _pythons())]
        argv = [a.format(netns=self.netns) for a in START] + ["sh", "-c", START_SSHD, "start-sshd", *args]
        with open(self.ctl / "start.err", "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         start_new_session=True)

    def ready(self) -> bool:
        """sshd writes its pid file once it listens."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = (self.ctl / "start.err").read_text(errors="replace")
            raise FleetError(f"sshd for {self.name} exited {self.proc.returncode}: {err}{self.log}")
        if not (self.ctl / "sshd.pid").exists():
            return False
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        self.sshd_pid = int(children[0])
        return True

    def stop(self) -> None:
        """SIGKILL every process in the host's network namespace (sshd, its sessions, anything
        exec_local left), as a power cut would, and reap sshd."""
        deadline = time.monotonic() + 10
        while pids := _netns_pids(self.netns):
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise FleetError(f"processes in {self.netns} survive SIGKILL: {pids}")
            time.sleep(0.01)
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(timeout=10)


def _netns_pids(netns: str) -> list[int]:
    proc = ip("netns", "pids", netns, check=False)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


# --- a fleet ------------------------------------------------------------------------------------

SSH_CONFIG_HOST = """\
Host {name}
  HostName {address}
"""

SSH_CONFIG_ALL = """\
Host *
  Port 22
  User root
  IdentityFile "{identity}"
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile "{known_hosts}"
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  CheckHostIP no
  BatchMode yes
  ConnectTimeout {timeout}
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  LogLevel ERROR
"""


PRIVATE = ("/run", "/root", "/tmp", "/var/tmp")  # what every host has of its own besides the target's parent


def _check_target(target: str) -> None:
    """The target's parent is what each host gets of its own, so it must exist here (a mount
    point) and must not be /, nor overlap the other private directories."""
    parent = Path(target).parent
    if not Path(target).is_absolute() or parent == Path("/") or not parent.is_dir():
        raise ValueError(f"target {target!r}: its parent must be an existing directory below /")
    for private in map(Path, PRIVATE):
        if parent == private or private in parent.parents or parent in private.parents:
            raise ValueError(f"target {target!r}: its parent overlaps the host's own {private}")


class Fleet(Sequence[Host]):
    """N test hosts, host1..hostN, as a context manager: everything it made is undone on exit,
    whatever happened, and then checked to be gone. fleet[0] is host1. Enter it in the thread
    that outlives it (hosts die with the thread that started them)."""

    def __init__(self, base: Path, n: int, *, without_python: Collection[str] = (), target: str = TARGET):
        if not 1 <= n <= 99:
            raise ValueError("between 1 and 99 hosts")
        _check_target(target)
        unknown = set(without_python) - {f"host{i}" for i in range(1, n + 1)}
        if unknown:
            raise ValueError(f"without_python names no host of this fleet: {sorted(unknown)}")
        self.run_id = secrets.token_hex(3)
        self.base = base
        self.client = base / "client"
        self.ssh_config = self.client / "ssh_config"
        self.known_hosts = self.client / "known_hosts"
        self.identity = self.client / "id_ed25519"
        self.target = target
        self.hosts = [Host(f"host{i}", f"{PREFIX}{self.run_id}-{i}", "", base / f"host{i}",
                           self.ssh_config, target, python=f"host{i}" not in without_python)
                      for i in range(1, n + 1)]
        self.subnets: list[str] = []
        self._links: list[tuple[str, str]] = []
        self._stack = contextlib.ExitStack()

    def __getitem__(self, i: Any) -> Any:
        return self.hosts[i]

    def __len__(self) -> int:
        return len(self.hosts)

    def by_name(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def __enter__(self) -> Fleet:
        CREATED.append(self.run_id)
        self._stack.callback(self._check_gone)  # runs last
        try:
            self._create()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _create(self) -> None:
        self.client.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet-client", "-f", str(self.identity)])
        client_pub = self.identity.with_suffix(".pub").read_text()
        for host in self.hosts:
            self._network(host)
        keys = [host.prepare(client_pub) for host in self.hosts]
        self._write_client_files(keys)
        for host in self.hosts:
            self._stack.callback(host.stop)
            host.start()
        self._wait_ready()

    def _network(self, host: Host) -> None:
        """The namespace, the veth pair (host side 'eth0') and the /30 between them."""
        ip("netns", "add", host.netns)
        self._stack.callback(ip, "netns", "del", host.netns)
        ip("link", "add", host.netns, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        self._stack.callback(ip, "link", "del", host.netns)
        net = _claim_subnet(host.netns)
        self.subnets.append(str(net))
        self._stack.callback(ip, "route", "del", "unreachable", str(net), "metric", str(CLAIM_METRIC))
        host.address = str(net[2])
        ip("link", "set", host.netns, "up")
        run(["ip", "-n", host.netns, "-batch", "-"],
            input=f"addr add {host.address}/30 dev eth0\nlink set eth0 up\nlink set lo up\n")

    def _write_client_files(self, keys: list[str]) -> None:
        self.known_hosts.write_text("".join(f"{h.name},{h.address},[{h.address}]:{ALT_PORT} {k}\n"
                                            for h, k in zip(self.hosts, keys)))
        self.ssh_config.write_text(
            "".join(SSH_CONFIG_HOST.format(name=h.name, address=h.address) for h in self.hosts)
            + SSH_CONFIG_ALL.format(identity=self.identity, known_hosts=self.known_hosts, timeout=CONNECT_TIMEOUT))

    def link(self, via: Host, to: Host) -> str:
        """A veth pair straight between two hosts' namespaces, over which `via` reaches `to` at
        to.address (a /32 route on via's side): how a jump host reaches a host behind it, e.g. with
        `to` cut from this machine. Returns via's address on that link (what `to`'s sshd logs as the
        peer). Nothing of it is in this namespace; it goes with the hosts' namespaces."""
        k = len(self._links)
        if k >= 64:
            raise FleetError("at most 64 host-to-host links per fleet")
        near, far = f"{JUMP_NET}.{4 * k + 1}", f"{JUMP_NET}.{4 * k + 2}"
        ip("-n", via.netns, "link", "add", f"jump{k}", "type", "veth", "peer", "name", f"jump{k}", "netns", to.netns)
        self._links.append((via.name, to.name))
        run(["ip", "-n", via.netns, "-batch", "-"],
            input=f"addr add {near}/30 dev jump{k}\nlink set jump{k} up\nroute add {to.address}/32 via {far}\n")
        run(["ip", "-n", to.netns, "-batch", "-"], input=f"addr add {far}/30 dev jump{k}\nlink set jump{k} up\n")
        return near

    def _wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(self.hosts)
        while waiting := [h for h in waiting if not h.ready()]:
            if time.monotonic() > deadline:
                raise FleetError(f"sshd not listening after {timeout}s on {[h.name for h in waiting]}")
            time.sleep(0.005)

    def _check_gone(self) -> None:
        left = leftovers(self.run_id) + [f"route unreachable {d}" for d in orphaned_claims(self.subnets)]
        if left:
            raise FleetError(f"fleet {self.run_id} left behind: {left}")


# --- what is left, and sweeping it ---------------------------------------------------------------

def leftovers(run_id: str) -> list[str]:
    """Namespaces, links, processes and claim routes of one run that still exist."""
    stem = f"{PREFIX}{run_id}-"
    names = [n for n in _netns_names() if n.startswith(stem)]
    left = [f"netns {n}" for n in names]
    left += [f"pid {p} in {n}" for n in names for p in _netns_pids(n)]
    left += [f"link {link['ifname']}" for link in json.loads(ip("-j", "link").stdout or "[]")
             if link["ifname"].startswith(stem)]
    return left


def orphaned_claims(subnets: Collection[str]) -> list[str]:
    """Claim routes left for these /30s. One may be there again as a concurrent run's new claim;
    that one has an address in its /30 (put on before the claim), an orphan has none."""
    addressed = _address_networks()
    return [d for d in _claim_routes() if d in subnets
            and not any(ipaddress.IPv4Network(d).overlaps(n) for n in addressed)]


def _netns_names() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]


def _claim_routes() -> list[str]:
    out = ip("-j", "-4", "route", "show", "type", "unreachable").stdout
    return [r["dst"] for r in json.loads(out or "[]")
            if r.get("metric") == CLAIM_METRIC and r["dst"].startswith(SUBNET + ".")]


def sweep(max_age: float = 60, stem: str = PREFIX) -> list[str]:
    """Remove what runs killed outright (SIGKILL, so no teardown) left: namespaces named stem*
    (default: every fleet's) with no process in them (a host's processes die with pytest) that are
    older than max_age seconds (a younger one may be a concurrent run's host being built), and
    claim routes whose /30 no address is in any more."""
    removed = []
    for name in _netns_names():
        if not name.startswith(stem) or _netns_pids(name):
            continue
        with contextlib.suppress(FileNotFoundError):
            if time.time() - os.stat(f"/run/netns/{name}").st_mtime < max_age:
                continue
        ip("link", "del", name, check=False)  # the namespace's own cleanup would remove it, later
        if ip("netns", "del", name, check=False).returncode == 0:
            removed.append(f"netns {name}")
    for dst in orphaned_claims(_claim_routes()):
        if ip("route", "del", "unreachable", dst, "metric", str(CLAIM_METRIC), check=False).returncode == 0:
            removed.append(f"route unreachable {dst}")
    return removed


# --- SIGTERM/SIGHUP as Ctrl-C while hosts exist ---------------------------------------------------

@contextlib.contextmanager
def interrupts_tear_down() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt (as SIGINT does) while hosts exist, so the
    teardown runs when CI or a terminal stops pytest; only SIGKILL skips it (see sweep())."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                previous[sig] = signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- command line ------------------------------------------------------------------------------

def _bench(n: int, rounds: int) -> None:
    import tempfile
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="mcpd-bench-") as tmp:
            t0 = time.perf_counter()
            fleet = Fleet(Path(tmp), n)
            with fleet:
                t1 = time.perf_counter()
                procs = [subprocess.Popen(h.ssh_argv("true")) for h in fleet]
                assert all(p.wait() == 0 for p in procs)
                t2 = time.perf_counter()
            t3 = time.perf_counter()
        print(f"{n} hosts: up {t1 - t0:.2f}s, parallel ssh {t2 - t1:.2f}s, down {t3 - t2:.2f}s, "
              f"create+teardown {t1 - t0 + t3 - t2:.2f}s")


def main(argv: list[str]) -> int:
    if argv[:1] == ["sweep"]:
        print("\n".join(sweep(max_age=float(argv[1]) if len(argv) > 1 else 60)) or "nothing to sweep")
        return 0
    if argv[:1] == ["bench"]:
        reason = unavailable()
        if reason:
            print(reason, file=sys.stderr)
            return 1
        _bench(int(argv[1]) if len(argv) > 1 else 4, int(argv[2]) if len(argv) > 2 else 5)
        return 0
    print("usage: hosts.py bench [N [ROUNDS]] | sweep [MAX_AGE_SECONDS]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
