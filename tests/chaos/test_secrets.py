"""Scenario 11: secrets in the source never reach production unless explicitly allowed, file by file."""

from __future__ import annotations

from conftest import Project, ok
from invariants import baseline, check

SECRETS = [".env", ".env.production", "config/.env.local", "certs/server.pem", "certs/server.key", "keys/id_rsa",
           "keys/id_ed25519.pub", "deploy/credentials.json", "gcp/service-account-prod.json", ".netrc", ".pypirc",
           "store/release.keystore", "certs/client.p12"]


def test_secrets_are_withheld_even_when_globs_match(project: Project) -> None:
    for rel in SECRETS:
        (project.source / rel).parent.mkdir(parents=True, exist_ok=True)
        (project.source / rel).write_text("TOP SECRET\n")
    project.write_config(include=["**"], exclude=["logs/**", "config.local.json"], validators=[])
    proc = ok(project.run("deploy"))
    assert f"withheld {len(SECRETS)} secret-looking file(s)" in proc.stdout
    deployed = {p.relative_to(project.target).as_posix() for p in project.target.rglob("*") if p.is_file()}
    assert not deployed & set(SECRETS), deployed & set(SECRETS)
    assert "server.py" in deployed
    for path in project.target.rglob("*"):
        if path.is_file():
            assert b"TOP SECRET" not in path.read_bytes(), path


def test_only_the_named_secret_is_lifted(project: Project) -> None:
    for rel in ("certs/public-ca.pem", "certs/server.key"):
        (project.source / rel).parent.mkdir(parents=True, exist_ok=True)
        (project.source / rel).write_text("PEM\n")
    project.write_config(include=project.profile["include"] + ["certs/*"], unsafe_allow_secrets=["certs/public-ca.pem"])
    ok(project.run("deploy"))
    (project.source / "certs" / "public-ca.pem").write_text("PEM 2\n")
    base = baseline(project)
    ok(project.run("deploy"))
    assert check(project, base) == "new"
    assert (project.target / "certs" / "public-ca.pem").exists()
    assert not (project.target / "certs" / "server.key").exists()
