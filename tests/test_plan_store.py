"""Plan diffs and digests; the content-addressed store, its verification and garbage collection."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from deploylib.errors import CorruptState
from deploylib.ids import new_id
from deploylib.manifest import Entry
from deploylib.plan import diff
from deploylib.store import Snapshot, Store, select_expired


def e(path: str, sha: str, mode: int = 0o644) -> Entry:
    return Entry(path, 1, mode, sha)


def test_diff_adds_changes_and_removes_only_what_was_deployed() -> None:
    source = {"a": e("a", "1"), "b": e("b", "2new"), "c": e("c", "3"), "m": e("m", "4", 0o755)}
    prod = {"b": e("b", "2"), "c": e("c", "3"), "old": e("old", "9"), "users": e("users", "8"), "m": e("m", "4")}
    plan = diff(source, prod, deployed={"b", "c", "old", "m"})
    assert [x.path for x in plan.added] == ["a"]
    assert [x.path for x in plan.changed] == ["b", "m"]  # a mode change is a change
    assert [x.path for x in plan.removed] == ["old"]  # 'users' was never deployed by us: kept
    assert plan.unchanged == 1


def test_digest_is_stable_and_changes_with_content() -> None:
    one = diff({"a": e("a", "1")}, {}, set())
    assert one.digest == diff({"a": e("a", "1")}, {}, set()).digest
    assert one.digest != diff({"a": e("a", "2")}, {}, set()).digest
    assert diff({"a": e("a", "1")}, {"a": e("a", "1")}, set()).empty


def test_ids_are_unique_within_the_same_millisecond() -> None:
    ids = {new_id("d") for _ in range(5000)}
    assert len(ids) == 5000
    assert sorted(ids)[0].startswith("d-20")


def snapshot(store: Store, tmp_path: Path, files: dict[str, bytes], created: str | None = None) -> Snapshot:
    entries = {}
    for rel, data in files.items():
        path = tmp_path / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        import hashlib

        entries[rel] = store.put(path, Entry(rel, len(data), 0o640, hashlib.sha256(data).hexdigest()))
    snap = Snapshot(new_id("s"), created or datetime.now(timezone.utc).isoformat(), new_id("d"), None, "1", None,
                    entries)
    store.save(snap)
    return snap


def test_each_object_is_stored_once_and_restores_verbatim(tmp_path: Path) -> None:
    store = Store(tmp_path / "bk")
    one = snapshot(store, tmp_path, {"a.py": b"same", "b.py": b"same", "c.py": b"other"})
    snapshot(store, tmp_path, {"a.py": b"same"})
    objects = [p for p in (tmp_path / "bk" / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 2
    dest = tmp_path / "restored.py"
    store.restore(store.load(one.id).files["c.py"], dest)
    assert dest.read_bytes() == b"other" and (dest.stat().st_mode & 0o777) == 0o640


def test_a_damaged_object_is_refused_by_hash(tmp_path: Path) -> None:
    store = Store(tmp_path / "bk")
    snap = snapshot(store, tmp_path, {"a.py": b"good bytes"})
    obj = store.object_path(snap.files["a.py"].sha256)
    os.chmod(obj, 0o644)
    obj.write_bytes(b"evil bytes")
    assert store.check(snap.files.values()) == [f"a.py: object {obj} is damaged"]
    with pytest.raises(CorruptState, match="damaged \\(hash mismatch\\)"):
        store.restore(snap.files["a.py"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    obj.unlink()
    assert "missing" in store.check(snap.files.values())[0]


def test_damaged_snapshot_manifest_is_reported_not_fatal(tmp_path: Path) -> None:
    store = Store(tmp_path / "bk")
    snapshot(store, tmp_path, {"a": b"1"})
    (tmp_path / "bk" / "snapshots" / "s-bad.json").write_text("{torn")
    snaps, problems = store.all_snapshots()
    assert len(snaps) == 1 and "snapshot manifest is damaged" in problems[0]


def test_retention_keeps_newest_young_and_protected_and_gc_frees_objects(tmp_path: Path) -> None:
    store = Store(tmp_path / "bk")
    now = datetime.now(timezone.utc)
    old = [snapshot(store, tmp_path, {"a": f"v{i}".encode()}, (now - timedelta(days=40 - i)).isoformat())
           for i in range(4)]
    young = snapshot(store, tmp_path, {"a": b"young"}, (now - timedelta(days=1)).isoformat())
    newest = snapshot(store, tmp_path, {"a": b"newest"}, now.isoformat())
    expired = select_expired(store.all_snapshots()[0], keep_last=1, keep_days=7, protected={old[0].id}, now=now)
    assert {s.id for s in expired} == {old[1].id, old[2].id, old[3].id}
    kept = [s for s in store.all_snapshots(with_files=True)[0] if s.id not in {x.id for x in expired}]
    assert {s.id for s in kept} == {old[0].id, young.id, newest.id}
    for s in expired:
        store.delete(s.id)
    count, size = store.collect_garbage(store.objects_of(s.id for s in kept))
    assert count == 3 and size == 6
    for s in kept:
        assert store.check(store.load(s.id).files.values()) == []


def _refs(store: Store, snap: Snapshot) -> Path:
    return store.snapshot_dir / f"{snap.id}.refs"


def _parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the manifests `objects_of` parses (the work the refs index exists to skip)."""
    import deploylib.store as store_module

    calls: list[int] = []
    real = store_module.loads_state

    def counting(data: bytes | str) -> object:
        calls.append(len(data))
        return real(data)

    monkeypatch.setattr(store_module, "loads_state", counting)
    return calls


def test_retention_reads_a_snapshots_objects_from_its_refs_not_its_manifest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "bk")
    snap = snapshot(store, tmp_path, {"a": b"1", "b": b"2", "link": b"3"})
    parses = _parses(monkeypatch)
    assert store.objects_of([snap.id]) == {e.sha256 for e in snap.files.values()}
    assert parses == []  # answered by the refs written with the snapshot
    _refs(store, snap).unlink()  # a store from before the index: parsed once, and the refs written
    assert store.objects_of([snap.id], cache=False) == {e.sha256 for e in snap.files.values()}
    assert len(parses) == 1 and not _refs(store, snap).exists()  # cache=False (a dry run) writes nothing
    assert store.objects_of([snap.id]) == {e.sha256 for e in snap.files.values()}
    assert len(parses) == 2 and _refs(store, snap).exists()
    assert store.objects_of([snap.id]) == {e.sha256 for e in snap.files.values()} and len(parses) == 2
    store.delete(snap.id)
    assert not _refs(store, snap).exists()


@pytest.mark.parametrize("damage", ["omit an object", "torn", "garbage", "a path for a name", "a name split in two",
                                    "a directory", "a head cut short", "no list", "a fifo"])
def test_a_refs_file_that_does_not_match_its_list_is_ignored(tmp_path: Path, damage: str) -> None:
    """Any damage to the refs makes retention parse the manifest: no object it names is ever collected."""
    store = Store(tmp_path / "bk")
    snap = snapshot(store, tmp_path, {"a": b"1", "b": b"2"})
    refs = _refs(store, snap)
    text = refs.read_text()
    refs.unlink()
    if damage == "omit an object":
        refs.write_text(text[:-65])  # the last sha256 line gone, the header as it was
    elif damage == "torn":
        refs.write_text(text[: len(text) // 2])
    elif damage == "garbage":
        refs.write_bytes(b"\xff" * 200)
    elif damage == "a path for a name":
        head, body = text.split("\n", 3)[:3], "../../victim\n"
        import hashlib

        head[2] = f"objects 1 {hashlib.sha256(body.encode()).hexdigest()}"
        refs.write_text("\n".join(head) + "\n" + body)
    elif damage == "a name split in two":  # 65 bytes a line still, counted and hashed anew: two short names
        import hashlib

        head, body = text.split("\n", 3)[:3], text.split("\n", 3)[3]
        body = body[:32] + "\n" + body[33:]
        head[2] = f"objects 2 {hashlib.sha256(body.encode()).hexdigest()}"
        refs.write_text("\n".join(head) + "\n" + body)
    elif damage == "a head cut short":  # the count line without its newline, the list gone
        refs.write_text(text[:text.index("\nobjects ") + 20])
    elif damage == "no list":  # the head alone: the count says 2, the (empty) list is hashed as nothing
        refs.write_text(text[:text.index("\n", text.index("\nobjects ") + 1) + 1])
    elif damage == "a fifo":  # never waited on
        os.mkfifo(refs)
    else:
        refs.mkdir()
    wanted = store.objects_of([snap.id], cache=False)
    assert wanted == {e.sha256 for e in snap.files.values()}
    assert store.collect_garbage(wanted) == (0, 0)


def test_what_no_kept_snapshot_references_is_what_their_union_leaves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a deploy retention takes the kept snapshots' objects away from the expired one's a snapshot at a
    time (`unreferenced`) instead of building their union: the same set, from the refs or (a store from
    before them) the manifests, and a kept snapshot that cannot be read still stops it."""
    store = Store(tmp_path / "bk")
    old = snapshot(store, tmp_path, {"a": b"1", "b": b"2", "c": b"3"})
    mid = snapshot(store, tmp_path, {"a": b"1", "b": b"22"})
    new = snapshot(store, tmp_path, {"a": b"1", "c": b"33", "d": b"3"})
    candidates = store.objects_of([old.id])
    expected = candidates - store.objects_of([mid.id, new.id])
    assert expected == {old.files["b"].sha256}  # "c" of old holds b"3", which new's "d" still references
    assert store.unreferenced(set(candidates), [mid.id, new.id]) == expected
    parses = _parses(monkeypatch)
    _refs(store, mid).unlink()
    assert store.unreferenced(set(candidates), iter([mid.id, new.id]), cache=False) == expected and len(parses) == 1
    (store.snapshot_dir / f"{new.id}.files.json").write_text("{torn")
    with pytest.raises(CorruptState, match="snapshot manifest is damaged"):
        store.unreferenced(candidates, [mid.id, new.id])


def test_a_damaged_kept_snapshot_stops_retention_even_when_nothing_would_be_deleted(tmp_path: Path) -> None:
    """Once every candidate is referenced the answer (delete nothing) cannot change, but a kept snapshot that
    cannot be read must still stop retention and be reported: reading no further hid the damage (the
    README: prune refuses while a snapshot is unreadable)."""
    store = Store(tmp_path / "bk")
    old = snapshot(store, tmp_path, {"a": b"1", "b": b"2"})
    same = snapshot(store, tmp_path, {"a": b"1", "b": b"2", "c": b"3"})
    later = snapshot(store, tmp_path, {"a": b"1"})
    (store.snapshot_dir / f"{later.id}.files.json").write_text("{torn")
    candidates = store.objects_of([old.id])
    for extra in (set(), {"f" * 64}):
        with pytest.raises(CorruptState, match="snapshot manifest is damaged"):
            store.unreferenced(candidates | extra, [same.id, later.id])


def test_refs_made_from_other_manifest_bytes_are_not_trusted(tmp_path: Path) -> None:
    """A whole, self-consistent refs file of a manifest that has since changed: the manifest wins."""
    store = Store(tmp_path / "bk")
    snap = snapshot(store, tmp_path, {"a": b"1"})
    other = snapshot(store, tmp_path, {"b": b"2"})
    manifest = store.snapshot_dir / f"{snap.id}.files.json"
    import json

    data = json.loads(manifest.read_text())
    b = other.files["b"]
    for column, value in zip(("paths", "sizes", "modes", "sha256"), b[:4]):
        data["files"][column].append(value)  # now also references other's object
    manifest.write_text(json.dumps(data))
    store.delete(other.id)
    wanted = store.objects_of([snap.id], cache=False)
    assert other.files["b"].sha256 in wanted
    assert store.collect_garbage(wanted) == (0, 0)
    manifest.write_text("{torn")
    with pytest.raises(CorruptState, match="snapshot manifest is damaged"):
        store.objects_of([snap.id])


def _vouching(path: Path, data: bytes):  # type: ignore[no-untyped-def]
    """A `known` that vouches for `path` as it is now (the hash cache after preflight)."""
    import hashlib

    st = os.stat(path)
    sha = hashlib.sha256(data).hexdigest()
    return sha, lambda s: sha if (s.st_ino, s.st_size, s.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns) \
        else None


def test_a_file_whose_hash_the_cache_vouches_for_is_stored_by_the_kernel_unhashed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deploylib.store as store_module

    store = Store(tmp_path / "bk")
    prod = tmp_path / "prod.bin"
    data = os.urandom(3 << 20)
    prod.write_bytes(data)
    sha, known = _vouching(prod, data)
    hashed: list[str] = []
    monkeypatch.setattr(store_module, "copy_with_hash", lambda *a, **k: hashed.append(str(a[0])))
    entry = store.put(prod, Entry("prod.bin", len(data), 0o644, sha), known)
    assert entry.sha256 == sha and hashed == []  # no read into Python, no hash
    obj = store.object_path(sha)
    assert obj.read_bytes() == data and (obj.stat().st_mode & 0o777) == 0o444
    assert [p.name for p in obj.parent.iterdir()] == [sha]


@pytest.mark.parametrize("case", ["not vouched", "written during the copy", "no kernel copy"])
def test_a_kernel_copy_that_cannot_be_trusted_falls_back_to_hashing_what_is_copied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    store = Store(tmp_path / "bk")
    prod = tmp_path / "prod.bin"
    data = b"a" * (1 << 20)
    prod.write_bytes(data)
    sha, known = _vouching(prod, data)
    real = os.copy_file_range
    if case == "not vouched":
        known = lambda s: None  # noqa: E731  (e.g. modified within the racy window)
    elif case == "written during the copy":
        def racing(fin: int, fout: int, count: int) -> int:
            n = real(fin, fout, count)
            with open(prod, "r+b") as f:  # same size, new bytes: only the mtime tells
                f.write(b"b")
            return n

        monkeypatch.setattr(os, "copy_file_range", racing)
    else:
        def unsupported(fin: int, fout: int, count: int) -> int:
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr(os, "copy_file_range", unsupported)
    entry = store.put(prod, Entry("prod.bin", len(data), 0o644, sha), known)
    now = prod.read_bytes()
    import hashlib

    assert entry.sha256 == hashlib.sha256(now).hexdigest()  # what the store holds, hashed as it was copied
    assert store.object_path(entry.sha256).read_bytes() == now
    assert not [p for p in store.object_dir.iterdir() if p.name.startswith("tmp-")]
    assert store.check([entry]) == []


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 8, 100])
def test_a_refs_file_read_a_slice_at_a_time_names_what_its_manifest_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    """Retention decodes a refs file a slice of names at a time, and a backup writes it so (memory): at every
    slice size, edges included, the file is the sorted names a line each under their count and hash, and
    the names read back are the manifest's own objects, none lost or cut in two."""
    from deploylib import store as store_module

    monkeypatch.setattr(store_module, "_REFS_SLICE", piece)
    store = Store(tmp_path / "bk")
    snap = snapshot(store, tmp_path, {**{f"f{i}": str(i).encode() for i in range(7)}, "same": b"3", "also": b"6"})
    body = "".join(f"{sha}\n" for sha in sorted({e.sha256 for e in snap.files.values()}))  # each object once
    head, _, rest = _refs(store, snap).read_text().partition("\nobjects ")
    assert rest == f"7 {hashlib.sha256(body.encode()).hexdigest()}\n{body}" and head.count("\n") == 1
    parses = _parses(monkeypatch)
    from_refs = store.objects_of([snap.id])
    assert parses == []  # the refs answered
    assert from_refs == {e.sha256 for e in snap.files.values()} and len(from_refs) == 7
    others = {hashlib.sha256(b"x%d" % i).hexdigest() for i in range(3)}
    assert store.unreferenced(from_refs | others, [snap.id]) == others


def test_a_store_that_let_go_of_its_listing_lists_again_when_asked(tmp_path: Path) -> None:
    """The backup drops the listing `has` keeps once it is done (memory for the stage): a later question,
    about an object stored since by another process or not at all, is answered from a new listing."""
    store = Store(tmp_path / "bk")
    snap = snapshot(store, tmp_path, {"a": b"1"})
    sha = snap.files["a"].sha256
    assert store.has(sha)
    store.forget_listing()
    other = Store(tmp_path / "bk")
    (tmp_path / "b").write_bytes(b"2")
    stored = other.put(tmp_path / "b", Entry("b", 1, 0o644, hashlib.sha256(b"2").hexdigest()))
    assert store.has(sha) and store.has(stored.sha256) and not store.has("0" * 64)
