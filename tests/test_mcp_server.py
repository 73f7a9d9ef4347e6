"""The MCP server: the SDK's own client over stdio against the real `mcp-deploy mcp` process."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import anyio

from conftest import REPO, Project, bump, hold_lock, ok, tree
from mcp_client import call, call_result, mcp_session

TOOLS = ["backups", "deploy", "diff", "history", "rollback", "status"]


def run(coro_fn: Any, *args: Any) -> Any:
    return anyio.run(coro_fn, *args)


def test_tool_names_default_to_the_profile_and_take_an_explicit_prefix(project: Project) -> None:
    async def names(config: Any, *extra: str) -> list[str]:
        async with mcp_session(config, *extra) as s:
            return sorted(t.name for t in (await s.list_tools()).tools)

    assert run(names, project.config) == [f"default_{t}" for t in TOOLS]
    project.config.write_text(project.config.read_text() + "  home:\n    source: dev\n    target: prod/home\n"
                              "    include: ['*.py']\n")
    assert run(names, project.config, "--profile", "home") == [f"home_{t}" for t in TOOLS]
    project.write_config(mcp={"tool_prefix": "agents_"})
    assert run(names, project.config) == [f"agents_{t}" for t in TOOLS]
    assert run(names, REPO / "deploy.yaml") == [f"ua_self_{t}" for t in TOOLS]  # the bundled example keeps its names


def test_tools_carry_annotations_titles_and_described_parameters(project: Project) -> None:
    async def listing() -> Any:
        async with mcp_session(project.config) as s:
            return {t.name.removeprefix("default_"): t for t in (await s.list_tools()).tools}

    tools = run(listing)
    for name in ("status", "history", "diff", "backups"):
        hints = tools[name].annotations
        assert hints.read_only_hint is True and hints.idempotent_hint is True, name
    for name in ("deploy", "rollback"):
        hints = tools[name].annotations
        assert hints.read_only_hint is False and hints.destructive_hint is True, name
        assert hints.idempotent_hint is False, name  # each call is a new operation, recorded in the history
    for name, tool in tools.items():
        assert tool.title and tool.annotations.open_world_hint is False, name
        assert not any(line != line.lstrip() for line in tool.description.splitlines()), tool.description
        for param, schema in tool.input_schema["properties"].items():
            assert len(schema.get("description", "")) > 20, (name, param)
    assert set(tools["rollback"].input_schema["properties"]) == {"to", "list_backups", "dry_run", "plan_digest"}
    assert set(tools["deploy"].input_schema["properties"]) == {"plan_digest", "ref", "overwrite_drift"}


def test_status_returns_the_same_facts_as_json_and_text_leads_with_the_summary(project: Project) -> None:
    ok(project.run("deploy"))
    bump(project)

    async def scenario() -> Any:
        async with mcp_session(project.config) as s:
            return await call_result(s, "default_status")

    result = run(scenario)
    assert not result.is_error
    status = result.structured_content
    _, cli = project.json("status")
    for key in ("version", "deploy_id", "deployed_at", "pending", "drift", "lock", "last", "target"):
        assert status[key] == cli[key], key
    assert status["summary"].startswith("Production v0.1.0 (") and status["summary"].endswith(
        "1 file pending deployment.")
    assert result.content[0].text == status["summary"]  # what a client shows first is the sentence, not JSON
    assert json.loads(result.content[1].text) == status


def test_preview_then_deploy_with_digest_and_progress(project: Project) -> None:
    progress: list[Any] = []

    async def scenario() -> tuple[Any, Any, Any]:
        async with mcp_session(project.config) as s:
            _, preview = await call(s, "default_deploy")
            untouched = project.target.exists()
            _, done = await call(s, "default_deploy", progress, plan_digest=preview["plan"]["digest"])
            return preview, untouched, done

    preview, existed_after_preview, done = run(scenario)
    assert preview["dry_run"] is True and preview["plan"]["counts"]["added"] == 9
    assert preview["summary"].startswith("Found 9 files to update") and "nothing deployed -> 0.1.0" in preview["summary"]
    assert existed_after_preview is False
    assert done["changed"] is True and done["version"] == "0.1.0"
    assert done["summary"].startswith("Found 9 files to update. Deploying... Success (0.1.0, d-")
    assert project.version()["deploy_id"] == done["deploy_id"]
    messages = [m for _, _, m in progress]
    for step in ("lock", "preflight", "backup", "stage", "validate", "commit", "verify", "record"):
        assert any(m.startswith(step) for m in messages), (step, messages)
    values = [v for v, _, _ in progress]
    assert all(a < b for a, b in zip(values, values[1:])), values  # the protocol: progress only grows
    assert {t for _, t, _ in progress} == {8} and progress[-1] == (8, 8, "done")  # a client can draw a bar


def test_digest_mismatch_is_a_structured_error_with_the_new_preview_and_digest(project: Project) -> None:
    ok(project.run("deploy"))
    before = tree(project.target)

    async def scenario() -> tuple[Any, Any, Any]:
        async with mcp_session(project.config) as s:
            _, preview = await call(s, "default_deploy")
            bump(project)  # the source changes after the preview
            bump(project, "server.py")
            refused = await call_result(s, "default_deploy", plan_digest=preview["plan"]["digest"])
            unchanged = tree(project.target)
            again = await call(s, "default_deploy", plan_digest=refused.structured_content["plan_digest"])
            return preview, (refused, unchanged), again

    preview, (refused, unchanged), again = run(scenario)
    assert preview["summary"] == "Nothing to deploy: production already matches the source."
    text = refused.content[0].text
    assert refused.is_error and "plan changed since it was previewed" in text
    assert "preview again (the default_deploy tool without plan_digest)" in text  # the tool, not a CLI flag
    assert "--dry-run" not in text
    assert "New preview: Found 2 files to update" in text
    error = refused.structured_content
    assert error["error_type"] == "PlanMismatch" and error["exit_code"] == 6 and error["ok"] is False
    assert error["preview"]["plan"]["counts"]["changed"] == 2 and error["preview"]["dry_run"] is True
    assert error["plan_digest"] == error["preview"]["plan"]["digest"] != preview["plan"]["digest"]
    assert unchanged == before
    assert again == (False, again[1]) and again[1]["changed"] is True  # the new digest deploys as it is
    assert (project.target / "server.py").read_bytes() == (project.source / "server.py").read_bytes()


def test_rollback_and_backup_listing(project: Project) -> None:
    ok(project.run("deploy"))
    v1 = project.managed()
    bump(project)
    ok(project.run("deploy"))

    async def scenario() -> tuple[Any, Any]:
        async with mcp_session(project.config) as s:
            listing = await call(s, "default_rollback", list_backups=True)
            done = await call(s, "default_rollback")
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
            _, preview = await call(s, "default_deploy")
            out.append(await call(s, "default_deploy", plan_digest=preview["plan"]["digest"]))
            out.append(await call(s, "default_rollback"))
            holder.send_signal(signal.SIGKILL)
            holder.wait()
            project.config.write_text("profiles: {default: {source: nowhere}}\n")
            out.append(await call(s, "default_status"))
            (project.source / "agents.json").write_text("{broken")
            project.config.write_text(good_config)
            _, preview = await call(s, "default_deploy")
            out.append(await call(s, "default_deploy", plan_digest=preview["plan"]["digest"]))
            out.append(await call(s, "default_status"))
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


def test_a_server_started_on_a_broken_config_stays_up_and_answers_with_the_error(project: Project) -> None:
    """It used to exit at start, and a client saw only "Connection closed"."""
    good = project.config.read_text()
    project.config.write_text("profiles: []\n")

    async def scenario() -> tuple[list[str], list[Any], Any]:
        async with mcp_session(project.config) as s:
            names = sorted(t.name for t in (await s.list_tools()).tools)
            answers = [await call_result(s, f"default_{t}") for t in TOOLS]
            project.config.write_text(good)  # fixed while the server runs: the next call works
            return names, answers, await call(s, "default_status")

    names, answers, fixed = run(scenario)
    assert names == [f"default_{t}" for t in TOOLS]
    for result in answers:
        assert result.is_error
        assert [c.text for c in result.content] == [f"{project.config}:1: profiles: expected a mapping, got []"]
        assert result.structured_content["error_type"] == "ConfigError" and result.structured_content["exit_code"] == 2
    assert fixed[0] is False and fixed[1]["summary"].startswith("Nothing deployed yet")


def test_a_broken_profile_keeps_its_explicit_tool_prefix(project: Project) -> None:
    del project.profile["include"]  # required: the profile cannot be loaded
    project.write_config(mcp={"tool_prefix": "agents_"})

    async def scenario() -> tuple[list[str], tuple[bool, Any]]:
        async with mcp_session(project.config) as s:
            return sorted(t.name for t in (await s.list_tools()).tools), await call(s, "agents_diff")

    names, (is_error, text) = run(scenario)
    assert names == [f"agents_{t}" for t in TOOLS]
    assert is_error and "profiles.default" in text and "'include' is required" in text


def test_mcp_task_without_any_config_still_serves_the_error(tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, Any]:
        async with mcp_session(tmp_path / "missing.yaml") as s:
            return await call(s, "default_status")

    is_error, text = run(scenario)
    assert is_error and "missing.yaml: config file not found" in text


def test_release_diffs_and_a_previewed_rollback_through_the_tools(project: Project) -> None:
    """diff with `release` says what a release changed; rollback dry_run's digest applies exactly that plan."""
    ok(project.run("deploy"))
    bump(project)
    code, second = project.json("deploy")
    assert code == 0

    async def scenario() -> tuple[Any, ...]:
        async with mcp_session(project.config) as s:
            changed = await call(s, "default_diff", release=second["deploy_id"])
            preview = await call(s, "default_rollback", dry_run=True)
            done = await call(s, "default_rollback", plan_digest=preview[1]["plan"]["digest"])
            return changed, preview, done

    (err1, changed), (err2, preview), (err3, done) = run(scenario)
    assert not (err1 or err2 or err3), (changed, preview, done)
    assert changed["plan"]["changed"] == ["workflow/plan.py"] and "+# changed" in changed["diffs"]["workflow/plan.py"]
    assert changed["summary"].startswith("Changes from ")
    assert preview["dry_run"] and done["changed"] and done["restored_from"] == preview["restored_from"]
    assert "# changed" not in (project.target / "workflow" / "plan.py").read_text()


def test_file_names_that_are_not_utf8_come_back_escaped_as_the_cli_prints_them(project: Project) -> None:
    """A name with a byte that is not UTF-8 (`caf\\xe9.json`): every tool answers, naming it `caf\\xe9.json`
    as the CLI's text output does, instead of the server failing to encode its reply."""
    project.write_config(include=[*project.profile["include"], "data/**"])
    data = project.source / "data"
    data.mkdir()
    raw = os.fsencode(data) + b"/caf\xe9.json"
    with open(raw, "wb") as f:
        f.write(b"{}\n")
    shown = "data/caf\\xe9.json"

    async def scenario() -> dict[str, Any]:
        async with mcp_session(project.config) as s:
            out: dict[str, Any] = {}
            err, preview = await call(s, "default_deploy")
            assert not err, preview
            out["preview"] = preview
            err, out["deployed"] = await call(s, "default_deploy", plan_digest=preview["plan"]["digest"])
            assert not err, out["deployed"]
            with open(raw, "wb") as f:
                f.write(b'{"changed": true}\n')
            for name in ("status", "diff", "history", "backups"):
                err, out[name] = await call(s, f"default_{name}")
                assert not err, (name, out[name])
            err, preview = await call(s, "default_deploy")
            err, out["redeployed"] = await call(s, "default_deploy", plan_digest=preview["plan"]["digest"])
            assert not err, out["redeployed"]
            err, out["rollback"] = await call(s, "default_rollback")
            assert not err, out["rollback"]
            result = await call_result(s, "default_diff", release="live")
            assert not result.is_error, result.content
            out["release_diff"] = result.structured_content
            out["release_diff_text"] = json.loads(result.content[1].text)  # the JSON after the summary
            with open(raw, "wb") as f:
                f.write(b"{broken\n")
            err, preview = await call(s, "default_deploy")
            result = await call_result(s, "default_deploy", plan_digest=preview["plan"]["digest"])
            out["failed"] = (result.is_error, result.content[0].text, result.structured_content)
            return out

    out = run(scenario)
    assert shown in out["preview"]["plan"]["added"] and shown in out["deployed"]["plan"]["added"]
    assert out["status"]["pending"]["changed"] == [shown]
    assert shown in out["diff"]["diffs"] and out["diff"]["plan"]["changed"] == [shown]
    assert out["redeployed"]["plan"]["changed"] == [shown] and out["rollback"]["plan"]["changed"] == [shown]
    assert shown in out["release_diff"]["diffs"], list(out["release_diff"]["diffs"])
    assert out["release_diff_text"] == out["release_diff"]
    is_error, text, data = out["failed"]
    assert is_error and f"validator json: {shown}:1:2: invalid JSON" in text and data["error"] == text
    assert "\\udc" not in json.dumps(out)  # no lone surrogate (json.dumps writes one as \\udcXX)
    assert open(os.fsencode(project.target / "data") + b"/caf\xe9.json", "rb").read() == b"{}\n"  # the real name


def test_a_warm_server_trusts_nothing_a_same_tick_edit_could_have_changed(project: Project) -> None:
    """The server keeps the hash cache and the store's object listing between calls. An edit of the same
    size landing in the same clock tick as the server's last look (so size and mtime are unchanged) is
    still previewed and deployed, and an object deleted from the store in the same tick as the server
    listed it is stored again by the next backup (the rollback that needs it works)."""
    import os

    def same_tick_rewrite(path: Path, data: bytes) -> None:
        st = os.stat(path)
        assert len(data) == st.st_size
        path.write_bytes(data)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    source = project.source / "workflow/plan.py"

    async def scenario() -> None:
        async with mcp_session(project.config) as s:
            _, preview = await call(s, "default_deploy")
            error, _ = await call(s, "default_deploy", plan_digest=preview["plan"]["digest"])
            assert not error
            first = source.read_bytes() + b"# edit a\n"
            source.write_bytes(first)  # an edit now: its mtime is within the racy window
            _, preview = await call(s, "default_deploy")  # hashes the edit; being racy, the hash is not kept
            assert preview["plan"]["changed"] == ["workflow/plan.py"]
            second = first.replace(b"# edit a", b"# edit b")
            same_tick_rewrite(source, second)  # same size, same mtime: only a fresh read tells
            _, again = await call(s, "default_deploy")
            assert again["plan"]["digest"] != preview["plan"]["digest"]
            error, done = await call(s, "default_deploy", plan_digest=again["plan"]["digest"])
            assert not error and done["changed"], done
            assert (project.target / "workflow/plan.py").read_bytes() == second

            # one more deploy: its preflight lists the store while the objects the last backup added are
            # still within the racy window; then the object of production's server.py is deleted by
            # another process in the same tick (its directory's mtime unchanged)
            source.write_bytes(first)
            _, preview = await call(s, "default_deploy")
            error, _ = await call(s, "default_deploy", plan_digest=preview["plan"]["digest"])
            assert not error
            from deploylib.fsutil import sha256_file

            server = project.target / "server.py"
            before = server.read_bytes()
            victim = next(p for p in (project.backups / "objects").rglob("*") if p.name == sha256_file(server))
            st = os.stat(victim.parent)
            victim.unlink()
            os.utime(victim.parent, ns=(st.st_atime_ns, st.st_mtime_ns))
            bump(project, "server.py")
            _, preview = await call(s, "default_deploy")
            error, _ = await call(s, "default_deploy", plan_digest=preview["plan"]["digest"])
            assert not error
            assert victim.exists()  # backed up again: the listing that had it was not trusted
            error, rolled = await call(s, "default_rollback")
            assert not error, rolled
            assert server.read_bytes() == before

    run(scenario)
