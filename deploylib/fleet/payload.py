"""The agent the controller ships: deploylib's stdlib-only core as a zipapp, and the bootstrap that
caches it on the host by sha256 (as Ansible ships its module payloads), so a host needs only Python.

The zip is built from this installation's own files, byte for byte reproducible (fixed order and
timestamps), so its hash names exactly this code: a host runs the agent of the controller talking to it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from functools import lru_cache
from pathlib import Path

# The controller's side: PyYAML, jsonschema, rich, invoke, the MCP SDK. Never shipped, so an import of
# one of them from the agent's code fails loudly in the tests instead of on someone's host.
CONTROLLER_ONLY = {"cli.py", "program.py", "tasks.py", "config.py", "configmark.py", "yamlconfig.py",
                   "operations.py", "mcp_server.py", "mcp_check.py", "terminal.py", "metrics.py", "__main__.py",
                   "fleet/controller.py", "fleet/transport.py", "fleet/payload.py"}
MAIN = "from deploylib.fleet.agent import main\nraise SystemExit(main())\n"
MIN_PYTHON = (3, 11)

# Run by `python3 -I -S -c BOOT SHA CACHE_DIR` on the host (isolated: no site-packages, no PYTHON*
# variables). Says "need-agent" when the cache lacks the zip, reads its length and bytes from stdin,
# checks the hash, keeps it, then runs it in this same process on the same pipes.
BOOT = """\
import hashlib, json, os, stat, sys
sha, cache = sys.argv[1], os.path.expanduser(sys.argv[2])
out = sys.stdout.buffer
def say(msg):
    out.write(json.dumps(msg).encode() + b"\\n"); out.flush()
if sys.version_info < %(min)r:
    say({"op": "error", "kind": "python", "error": "python3 is %%s; the agent needs Python >= %(min_text)s"
         %% sys.version.split()[0]}); sys.exit(3)
path = os.path.join(cache, sha + ".pyz")
def refuse(p, why):
    say({"op": "error", "kind": "agent", "error": "%%s: %%s; the agent runs from there, so only uid %%d may write "
         "it: fix its owner and mode, or remove it" %% (p, why, os.geteuid())}); sys.exit(3)
def own(p, kind):
    try: st = os.lstat(p)
    except FileNotFoundError: return False
    if not (stat.S_ISDIR if kind == "dir" else stat.S_ISREG)(st.st_mode):
        refuse(p, "is not a %%s (a link?)" %% ("directory" if kind == "dir" else "regular file"))
    if st.st_uid != os.geteuid(): refuse(p, "is owned by uid %%d" %% st.st_uid)
    if st.st_mode & 0o022: refuse(p, "is writable by other users (mode %%o)" %% stat.S_IMODE(st.st_mode))
    return True
def intact():
    try:
        with open(path, "rb") as f: return hashlib.sha256(f.read()).hexdigest() == sha
    except OSError: return False
own(cache, "dir")  # whoever can write there could swap the zip between the hash check and the import
if not (own(path, "file") and intact()):
    say({"op": "need-agent"})
    size = int(sys.stdin.buffer.readline())
    data = sys.stdin.buffer.read(size)
    if hashlib.sha256(data).hexdigest() != sha:
        say({"op": "error", "kind": "agent", "error": "the agent arrived damaged (hash mismatch)"}); sys.exit(3)
    parent = os.path.dirname(cache)
    os.makedirs(os.path.dirname(parent), exist_ok=True)
    for d in (parent, cache):
        try: os.mkdir(d, 0o700)
        except FileExistsError: pass
    own(cache, "dir")
    tmp = "%%s.tmp-%%d" %% (path, os.getpid())
    try: os.unlink(tmp)  # a killed bootstrap's, in a directory only we can write
    except FileNotFoundError: pass
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb") as f:
        f.write(data)
    os.replace(tmp, path)
sys.path.insert(0, path)
from deploylib.fleet.agent import main
sys.exit(main())
""" % {"min": MIN_PYTHON, "min_text": ".".join(map(str, MIN_PYTHON))}


def cache_dir(state_dir: str) -> str:
    """Where a host keeps agents: inside the profile's state dir (created 0700 like the lock does)."""
    return f"{state_dir.rstrip('/')}/agent"


@lru_cache(maxsize=1)
def agent() -> tuple[bytes, str]:
    """(zip bytes, sha256) of the agent of this installation."""
    root = Path(__file__).resolve().parent.parent
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel in CONTROLLER_ONLY or "__pycache__" in rel:
                continue
            info = zipfile.ZipInfo(f"deploylib/{rel}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
        info = zipfile.ZipInfo("__main__.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        zf.writestr(info, MAIN)
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()
