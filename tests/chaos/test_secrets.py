"""Scenario 11: secrets in the source never reach production unless explicitly allowed, file by file."""

from __future__ import annotations

from conftest import Project, ok, tree
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


# The files the hardening issue found deployed, in the letter case it found them.
ISSUE_NAMES = [".aws/credentials", ".git-credentials", ".pgpass", "secrets.yaml", ".htpasswd", "kubeconfig", ".ENV",
               "key.PEM", "Id_Rsa", ".env.d/prod", "keys/AuthKey_ABC123.p8", "certs/client.der", "keys/deploy_key",
               "config/KubeConfig", ".SSH/id_ed25519", "infra/terraform.tfstate"]
FAKE_AWS_KEY_ID = "AKIA" + "X" * 16  # built here so this file holds no key-shaped literal


def test_secret_names_in_any_case_never_reach_production(project: Project) -> None:
    for rel in ISSUE_NAMES:
        (project.source / rel).parent.mkdir(parents=True, exist_ok=True)
        (project.source / rel).write_text("TOP SECRET\n")
    project.write_config(include=["**"], exclude=["logs/**", "config.local.json"], validators=[])
    proc = ok(project.run("deploy"))
    assert f"withheld {len(ISSUE_NAMES) + 1} secret-looking file(s)" in proc.stdout  # + the example's own .env
    deployed = {p.relative_to(project.target).as_posix() for p in project.target.rglob("*") if p.is_file()}
    assert not deployed & set(ISSUE_NAMES), deployed & set(ISSUE_NAMES)
    assert "server.py" in deployed
    for path in project.target.rglob("*"):
        if path.is_file():
            assert b"TOP SECRET" not in path.read_bytes(), path


def test_a_key_inside_a_file_refuses_the_deploy_naming_file_and_line(project: Project) -> None:
    ok(project.run("deploy"))
    base = baseline(project)
    before = tree(project.target)
    settings = project.source / "workflow" / "settings.py"
    settings.write_text(f'"""Settings."""\n\nAWS_ACCESS_KEY_ID = "{FAKE_AWS_KEY_ID}"\n')
    proc = project.run("deploy")
    assert proc.returncode == 4, proc.stderr
    assert "workflow/settings.py:3: looks like a secret (AWS access key id)" in proc.stderr
    assert "unsafe_allow_secrets" in proc.stderr
    assert FAKE_AWS_KEY_ID not in proc.stdout + proc.stderr  # the message names, never shows
    assert tree(project.target) == before
    settings.unlink()
    check(project, base, expect="old")


def test_a_file_lifted_by_unsafe_allow_secrets_ships_with_its_key(project: Project) -> None:
    settings = project.source / "workflow" / "settings.py"
    settings.write_text(f'AWS_ACCESS_KEY_ID = "{FAKE_AWS_KEY_ID}"\n')
    project.write_config(unsafe_allow_secrets=["workflow/settings.py"])
    ok(project.run("deploy"))
    assert (project.target / "workflow" / "settings.py").read_bytes() == settings.read_bytes()


def test_a_rollback_to_a_secret_no_longer_allowed_is_refused(project: Project) -> None:
    """A deploy screens names while it scans the source; a rollback's files come from a snapshot, so the
    name check still runs on them: lifting a secret is undone by deleting its line, rollbacks included."""
    (project.source / "certs").mkdir()
    (project.source / "certs" / "public-ca.pem").write_text("PEM\n")
    project.write_config(include=project.profile["include"] + ["certs/*"], unsafe_allow_secrets=["certs/public-ca.pem"])
    ok(project.run("deploy"))
    (project.source / "certs" / "public-ca.pem").write_text("PEM 2\n")
    ok(project.run("deploy"))
    project.write_config(unsafe_allow_secrets=[])
    base = baseline(project)
    proc = project.run("rollback")
    assert proc.returncode == 4, proc.stderr
    assert "secret-looking files in the sync set: certs/public-ca.pem" in proc.stderr
    assert check(project, base) == "old"
