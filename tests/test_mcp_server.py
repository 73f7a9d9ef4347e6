"""The MCP server: the SDK's own client over stdio against the real `mcp-deploy mcp` process."""

from __future__ import annotations

import signal
from typing import Any

import anyio

from conftest import Project, bump, hold_lock, ok, tree
from mcp_client import call, mcp_session


def run(coro_fn: Any, *args: Any) -> Any:
    return anyio.run(coro_fn, *args)


def test_lists_the_tools_with_the_profile_prefix(project: Project) -> None:
    async def names() -> list[str]:
        async with mcp_session(project.config) as s:
            return sorted(t.name for t in (await s.list_tools()).tools)

    assert run(names) == ["ua_self_deploy", "ua_self_diff", "ua_self_history", "ua_self_rollback", "ua_self_status"]
    project.write_config(mcp={"tool_prefix": "agents_"})
    assert run(names)[0] == "agents_deploy"


def test_status_returns_the_same_facts_as_json(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)

    async def scenario() -> Any:
        async with mcp_session(project.config) as s:
            return await call(s, "ua_self_status")

    is_error, status = run(scenario)
    assert not is_error
    _, cli = project.json("status")
    for key in ("version", "deploy_id", "deployed_at", "pending", "drift", "lock", "last", "target"):
        assert status[key] == cli[key], key
    assert status["summary"].startswith("Production v0.1.0 (") and status["summary"].endswith(
        "1 file pending deployment.")


def test_preview_then_deploy_with_digest_and_progress(project: Project) -> None:
    progress: list[Any] = []

    async def scenario() -> tuple[Any, Any, Any]:
        async with mcp_session(project.config) as s:
            _, preview = await call(s, "ua_self_deploy")
            untouched = project.target.exists()
            _, done = await call(s, "ua_self_deploy", progress, plan_digest=preview["plan"]["digest"])
            return preview, untouched, done

    preview, existed_after_preview, done = run(scenario)
    assert preview["dry_run"] is True and preview["plan"]["counts"]["added"] == 9
    assert preview["summary"].startswith("Found 9 files to update") and "nothing deployed -> 0.1.0" in preview["summary"]
    assert existed_after_preview is False
    assert done["changed"] is True and done["version"] == "0.1.0"
    assert done["summary"].startswith("Found 9 files to update. Deploying... Success (0.1.0, d-")
    assert project.version()["deploy_id"] == done["deploy_id"]
    messages = [m for _, m in progress]
    for step in ("lock", "preflight", "backup", "stage", "validate", "commit", "verify", "record"):
        assert any(m.startswith(step) for m in messages), (step, messages)
    assert [v for v, _ in progress] == sorted(v for v, _ in progress)  # monotonic


def test_digest_mismatch_is_refused_with_a_fresh_preview(project: Project) -> None:
    ok(project.run("deploy"))
    before = tree(project.target)

    async def scenario() -> tuple[Any, Any]:
        async with mcp_session(project.config) as s:
            _, preview = await call(s, "ua_self_deploy")
            bump(project)  # the source changes after the preview
            bump(project, "server.py")
            refused = await call(s, "ua_self_deploy", plan_digest=preview["plan"]["digest"])
            return preview, refused

    preview, (is_error, text) = run(scenario)
    assert preview["summary"] == "Nothing to deploy: production already matches the source."
    assert is_error and "plan changed since it was previewed" in text
    assert "preview again (the ua_self_deploy tool without plan_digest)" in text  # the tool, not a CLI flag
    assert "--dry-run" not in text
    assert "New preview: Found 2 files to update" in text
    assert tree(project.target) == before


def test_rollback_and_backup_listing(project: Project) -> None:
    ok(project.run("deploy"))
    v1 = project.managed()
    bump(project)
    ok(project.run("deploy"))

    async def scenario() -> tuple[Any, Any]:
        async with mcp_session(project.config) as s:
            listing = await call(s, "ua_self_rollback", list_backups=True)
            done = await call(s, "ua_self_rollback")
            return listing, done

    (err1, listing), (err2, done) = run(scenario)
    assert not err1 and len(listing["snapshots"]) == 1 and listing["snapshots"][0]["rollback_target"]
    assert not err2 and done["restored_from"] == listing["rollback_target"]
    assert done["summary"].startswith(f"Rolled back to {listing['rollback_target']} (0.1.0)")
    assert project.managed() == v1


def test_errors_are_tool_errors_and_the_server_keeps_answering(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)
    holder = hold_lock(project, 60)
    good_config = project.config.read_text()

    async def scenario() -> list[tuple[bool, Any]]:
        out = []
        async with mcp_session(project.config) as s:
            _, preview = await call(s, "ua_self_deploy")
            out.append(await call(s, "ua_self_deploy", plan_digest=preview["plan"]["digest"]))
            out.append(await call(s, "ua_self_rollback"))
            holder.send_signal(signal.SIGKILL)
            holder.wait()
            project.config.write_text("profiles: {default: {source: nowhere}}\n")
            out.append(await call(s, "ua_self_status"))
            (project.source / "agents.json").write_text("{broken")
            project.config.write_text(good_config)
            _, preview = await call(s, "ua_self_deploy")
            out.append(await call(s, "ua_self_deploy", plan_digest=preview["plan"]["digest"]))
            out.append(await call(s, "ua_self_status"))
        return out

    try:
        lock_deploy, lock_rollback, bad_config, invalid, status = run(scenario)
    finally:
        holder.kill()
    assert lock_deploy[0] and f"deployment lock held by pid {holder.pid}" in lock_deploy[1]
    assert lock_rollback[0] and "deployment lock held" in lock_rollback[1]
    assert bad_config[0] and "profiles.default" in bad_config[1] and "is required" in bad_config[1]
    assert invalid[0] and "deploy failed at validate" in invalid[1]
    assert not status[0] and status[1]["version"] == "0.1.0"


def test_server_refuses_to_start_on_a_broken_config(project: Project) -> None:
    import subprocess

    from mcp_client import SCRIPT

    project.config.write_text("profiles: []\n")
    proc = subprocess.run([SCRIPT, "mcp", "--config", str(project.config)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=30)
    assert proc.returncode == 2 and "profiles: expected a mapping" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
