"""Which files the web server hands out (assistant/ui/files.py): uploads leave Gradio's
cache, exports reach their owner only, Strata's folders are never servable."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from assistant.access import Access, Visitor
from assistant.errors import StrataError
from assistant.settings import Settings
from assistant.ui.files import (
    NOT_OURS,
    REFUSE,
    SERVE,
    SERVE_ONCE,
    Exports,
    check_not_served,
    discard_upload,
    guard_middleware,
    hide_server_paths,
)

ALICE = Visitor(user="alice", session="s-alice")
ANON = Visitor(user=None, session="s-anon")


def test_discard_upload_removes_cached_uploads_and_nothing_else(tmp_path):
    cache = tmp_path / "gradio"
    upload = cache / "0257d5" / "notes.md"
    upload.parent.mkdir(parents=True)
    upload.write_text("private")
    mine = tmp_path / "notes.md"
    mine.write_text("the user's own copy")
    discard_upload(upload, root=cache)
    discard_upload(mine, root=cache)
    discard_upload(cache / "gone" / "never.md", root=cache)  # already gone: no error
    assert not upload.exists() and not upload.parent.exists() and cache.is_dir()
    assert mine.read_text() == "the user's own copy"


def test_server_paths_in_messages_become_file_names(tmp_path, monkeypatch):
    cache = tmp_path / "gradio"
    message = f"not a readable .docx (Package not found at '{cache}/0257d5/random.docx')"
    assert hide_server_paths(message, root=cache) == (
        "not a readable .docx (Package not found at 'random.docx')")
    assert hide_server_paths("empty file", root=cache) == "empty file"
    monkeypatch.setenv("GRADIO_TEMP_DIR", f"{tmp_path}/./gradio")  # as configured, unresolved
    said = f"no such file: {tmp_path}/./gradio/0257d5/a.pdf; {cache}/0257d5/b.pdf"
    assert hide_server_paths(said) == "no such file: a.pdf; b.pdf"


def test_an_export_is_served_to_its_owner_only(tmp_path):
    exports = Exports(root=tmp_path)
    path = exports.create(ALICE, "strata-ledger.csv")
    path.write_text("a,b\n")
    assert path.parent.parent == tmp_path.resolve() and len(path.parent.name) > 40
    assert exports.verdict(str(path), "alice", consume=True)[0] == SERVE
    assert exports.verdict(str(path), "alice", consume=True)[0] == SERVE  # again: still hers
    for other in ("bob", None):
        assert exports.verdict(str(path), other, consume=True)[0] == REFUSE
    for sneaky in (f"{tmp_path}/elsewhere/../{path.parent.name}/strata-ledger.csv",
                   f"/{path}", str(path).replace("/strata-ledger", "/./strata-ledger")):
        assert exports.verdict(sneaky, "bob", consume=True)[0] == REFUSE
        assert exports.verdict(sneaky, "alice", consume=True)[0] == SERVE
    stale = tmp_path / "strata-export-0000" / "strata-ledger.csv"  # a past run's, unregistered
    assert exports.verdict(str(stale), "alice", consume=True)[0] == REFUSE
    upload = tmp_path / "0257d5" / "notes.md"  # an upload in flight: never served back
    assert exports.verdict(str(upload), "alice", consume=True)[0] == REFUSE
    assert exports.verdict("/etc/hostname", "bob", consume=True)[0] == NOT_OURS


def test_an_anonymous_export_is_served_once(tmp_path):
    exports = Exports(root=tmp_path)
    path = exports.create(ANON, "strata-ledger.csv")
    assert exports.verdict(str(path), None, consume=False)[0] == SERVE_ONCE  # a HEAD
    decision, export = exports.verdict(str(path), None, consume=True)
    assert decision == SERVE_ONCE and export is not None
    assert exports.verdict(str(path), None, consume=True)[0] == REFUSE


def test_exports_go_with_their_session_or_their_age(tmp_path):
    exports = Exports(root=tmp_path)
    hers, theirs = exports.create(ALICE, "a.csv"), exports.create(ANON, "b.csv")
    exports.forget_session("s-alice")
    assert not hers.parent.exists() and theirs.parent.exists()
    assert exports.verdict(str(hers), "alice", consume=True)[0] == REFUSE
    exports.ttl_s = -1
    exports.expire()
    assert not theirs.parent.exists()


def guarded_app(exports: Exports) -> TestClient:
    """A stand-in for Gradio: its file route serves any path; the guard stands in front."""

    async def file(request):
        return FileResponse(request.path_params["path"])

    routes = [Route("/gradio_api/file={path:path}", file),
              Route("/gradio_api/file/{path:path}", file)]
    app = Starlette(routes=routes,
                    middleware=[guard_middleware(exports)])
    app.cookie_id, app.tokens = "x1", {"t-alice": "alice", "t-bob": "bob"}  # as Gradio's App
    return TestClient(app)


def test_the_guard_refuses_an_export_to_anyone_but_its_owner(tmp_path):
    exports = Exports(root=tmp_path)
    path = exports.create(ALICE, "strata-ledger.csv")
    path.write_text("question\nprivate\n")
    client = guarded_app(exports)
    url = f"/gradio_api/file={path}"
    assert client.get(url, cookies={"access-token-unsecure-x1": "t-bob"}).status_code == 404
    assert client.get(url, cookies={"access-token-unsecure-x1": "forged"}).status_code == 404
    assert client.get(url).status_code == 404
    client.cookies.set("access-token-unsecure-x1", "t-alice")
    assert client.get(url).text == "question\nprivate\n"
    upload = tmp_path / "0257d5" / "notes.md"
    upload.parent.mkdir()
    upload.write_text("an upload in flight")
    assert client.get(f"/gradio_api/file/{upload}").status_code == 404  # either spelling
    other = tmp_path.parent / f"{tmp_path.name}-elsewhere.txt"
    other.write_text("outside the cache")
    try:  # outside the cache Gradio's own rules decide (here: a stand-in that serves all)
        assert client.get(f"/gradio_api/file={other}").text == "outside the cache"
    finally:
        other.unlink()


def test_the_guard_serves_an_anonymous_export_once_then_deletes_it(tmp_path):
    exports = Exports(root=tmp_path)
    path = exports.create(ANON, "strata-ledger.csv")
    path.write_text("question\n")
    client = guarded_app(exports)
    assert client.get(f"/gradio_api/file={path}").text == "question\n"
    assert client.get(f"/gradio_api/file={path}").status_code == 404
    assert not path.parent.exists()


def test_strata_folders_must_not_be_servable(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    apart = Settings(data_dir=tmp_path / "data", adapters_dir=tmp_path / "adapters",
                     knowledge_dir=tmp_path / "knowledge")
    check_not_served(apart)
    with pytest.raises(StrataError, match="data folder .* overlaps"):
        check_not_served(apart.model_copy(update={"data_dir": cache / "data"}))
    with pytest.raises(StrataError, match="folder .* overlaps .*serves to visitors"):
        check_not_served(apart, allowed_paths=[str(tmp_path)])  # allowed_paths cover it
    check_not_served(apart, allowed_paths=[str(tmp_path / "public")])


def test_a_closed_page_takes_its_exports_with_it(tmp_path):
    from assistant.ui.app import forget_session
    from assistant.ui.common import Context

    ctx = Context(services=None, access=Access(Settings()), exports=Exports(root=tmp_path))
    hers = ctx.exports.create(ALICE, "strata-ledger.csv")
    forget_session(ctx, SimpleNamespace(username="alice", session_hash="s-alice"))
    assert not hers.parent.exists()
