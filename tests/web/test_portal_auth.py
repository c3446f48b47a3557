"""Sign-in, permissions, CSRF, secure cookies, login rate limit, and the edit workflow with
optimistic concurrency: a stale form gets a 409 and nothing is overwritten; a saved edit shows
in the history, the JSON API and the Atom feed."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from lxml import etree
from tests.blueprint.support import PASSWORD, csrf_from, edit_form, login, make_app

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture()
def app(tmp_path: Path) -> FastAPI:
    return make_app(tmp_path)


def client_for(app: FastAPI, user: str | None = None, **kw: str) -> TestClient:
    c = TestClient(app, **kw)  # type: ignore[arg-type]
    if user:
        r = login(c, user)
        assert r.status_code == 303, r.text
    return c


def test_login_sets_a_safe_session_cookie(app: FastAPI) -> None:
    c = TestClient(app)
    page = c.get("/login")
    assert "cp_csrf=" in page.headers["set-cookie"]
    r = login(c, "eddie")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "cp_session=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie.replace("cp_session", "")  # plain http test server
    assert "Signed in as" in c.get("/").text


def test_secure_cookie_behind_https(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    c = TestClient(app, base_url="https://testserver")
    assert "secure" in login(c, "eddie").headers["set-cookie"].lower()
    monkeypatch.setenv("CITYPULSE_COOKIE_SECURE", "1")
    c = TestClient(app)
    page = c.get("/login")
    assert "secure" in page.headers["set-cookie"].lower()


def test_login_failures(app: FastAPI) -> None:
    c = TestClient(app)
    assert login(c, "eddie", "wrong password").status_code == 400
    assert login(c, "nobody").status_code == 400
    # no CSRF token: refused before the password is even checked
    r = c.post("/login", data={"username": "eddie", "password": PASSWORD})
    assert r.status_code == 403 and "Form expired" in r.text
    # a token from another browser does not match this one's cookie
    other = TestClient(app)
    token = csrf_from(other.get("/login").text)
    fresh = TestClient(app)
    fresh.get("/login")
    r = fresh.post("/login", data={"username": "eddie", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 403


def test_login_rate_limit(app: FastAPI) -> None:
    c = TestClient(app)
    codes = [login(c, "ada", "wrong password").status_code for _ in range(5)]
    assert codes == [400] * 5
    r = login(c, "ada")  # the right password, but too many attempts this minute
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert "Too many sign-in attempts" in r.text
    assert login(c, "eddie").status_code == 303  # other usernames from the same IP still work


def test_open_redirect_refused(app: FastAPI) -> None:
    c = TestClient(app)
    token = csrf_from(c.get("/login").text)
    r = c.post(
        "/login",
        data={
            "username": "eddie",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example/x",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_permissions(app: FastAPI) -> None:
    anon = TestClient(app)
    r = anon.get("/initiatives/mobility-01/edit", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/initiatives/mobility-01/edit"
    r = anon.get("/zh-hant/initiatives/mobility-01/edit", follow_redirects=False)
    assert r.headers["location"] == "/zh-hant/login?next=/initiatives/mobility-01/edit"
    assert anon.get("/admin/users", follow_redirects=False).status_code == 303
    r = anon.post("/initiatives/mobility-01/edit", data={}, follow_redirects=False)
    assert r.status_code == 303

    viewer = client_for(app, "vera")
    assert viewer.get("/initiatives/mobility-01/edit").status_code == 403
    assert viewer.get("/admin/users").status_code == 403
    assert "Edit</a>" not in viewer.get("/initiatives/mobility-01").text
    form = {"csrf_token": csrf_from(viewer.get("/").text), "version": "0", "note": "x"}
    assert viewer.post("/initiatives/mobility-01/edit", data=form).status_code == 403

    editor = client_for(app, "eddie")
    assert editor.get("/initiatives/mobility-01/edit").status_code == 200
    assert editor.get("/admin/users").status_code == 403
    assert "Edit</a>" in editor.get("/initiatives/mobility-01").text

    admin = client_for(app, "ada")
    page = admin.get("/admin/users")
    assert page.status_code == 200 and "eddie" in page.text


def test_admin_adds_user_and_changes_role(app: FastAPI) -> None:
    admin = client_for(app, "ada")
    token = csrf_from(admin.get("/admin/users").text)
    r = admin.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "action": "add",
            "username": "newbie",
            "password": "long enough pw",
            "role": "viewer",
        },
    )
    assert r.status_code == 200 and "User newbie added." in r.text
    r = admin.post(
        "/admin/users",
        data={"csrf_token": token, "action": "set-role", "username": "newbie", "role": "editor"},
    )
    assert r.status_code == 200
    assert app.state.portal.db.user("newbie").role == "editor"
    r = admin.post(
        "/admin/users", data={"action": "set-role", "username": "newbie", "role": "admin"}
    )
    assert r.status_code == 403  # no CSRF token
    assert app.state.portal.db.user("newbie").role == "editor"


def test_logout(app: FastAPI) -> None:
    c = client_for(app, "eddie")
    assert c.post("/logout", data={}).status_code == 403  # CSRF required
    token = csrf_from(c.get("/").text)
    r = c.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/initiatives/mobility-01/edit", follow_redirects=False).status_code == 303


def test_edit_shows_in_history_api_and_atom(app: FastAPI) -> None:
    c = client_for(app, "eddie")
    form = edit_form(c, "mobility-07")
    assert form["version"] == "0" and form["status"] == "unknown"
    form.update(
        status="ended", status_as_of="2023-12", note="Superseded by HKeToll tags (see mobility-06)"
    )
    r = c.post("/initiatives/mobility-07/edit", data=form, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/initiatives/mobility-07?saved=1#history"
    page = c.get("/initiatives/mobility-07?saved=1").text
    assert "Saved." in page and "Superseded by HKeToll tags" in page and "by eddie" in page
    assert '<span class="st-badge st-ended">Ended</span>' in page
    # anonymous readers see the new state and the history too
    anon = TestClient(app)
    api = anon.get("/api/v1/initiatives/mobility-07").json()
    assert api["status"] == "ended" and api["version"] == 1
    assert api["history"][0]["changed"] == ["status", "status_as_of"]
    assert api["history"][0]["before"]["status"] == "unknown"
    feed = etree.fromstring(anon.get("/initiatives/updates.atom").content)
    first = feed.find(f"{ATOM}entry")
    assert first is not None
    assert first.findtext(f"{ATOM}title") == (
        "In-vehicle units for tolls, parking and traffic information: updated by eddie"
    )
    assert "Superseded by HKeToll tags" in first.findtext(f"{ATOM}summary")
    assert "Superseded by HKeToll tags" in anon.get("/").text  # latest progress on home


def test_csrf_rejected_nothing_saved(app: FastAPI) -> None:
    c = client_for(app, "eddie")
    form = edit_form(c, "mobility-07")
    form.update(status="ended", note="n")
    for bad in ("", "forged-token"):
        r = c.post("/initiatives/mobility-07/edit", data=dict(form, csrf_token=bad))
        assert r.status_code == 403
    assert app.state.portal.db.edits() == []


def test_validation_errors_nothing_saved(app: FastAPI) -> None:
    c = client_for(app, "eddie")
    form = edit_form(c, "mobility-07")
    form.update(
        status="ended",
        note="",
        status_as_of="someday",
        title_en="",
        milestones="2018-04-24 | ok\nno separator",
    )
    r = c.post("/initiatives/mobility-07/edit", data=form)
    assert r.status_code == 422
    assert "The change was not saved" in r.text
    assert "This field is required." in r.text
    assert "Line 2: write &#39;date | event&#39;." in r.text
    assert 'aria-invalid="true"' in r.text
    assert 'value="someday"' in r.text  # the user's input is kept
    form = edit_form(c, "mobility-07")
    form["note"] = "nothing really"
    r = c.post("/initiatives/mobility-07/edit", data=form)
    assert r.status_code == 422 and "Nothing was changed." in r.text
    assert app.state.portal.db.edits() == []


def test_concurrent_edit_conflict(app: FastAPI) -> None:
    eddie = client_for(app, "eddie")
    erin = client_for(app, "erin")
    form_a = edit_form(eddie, "living-13")
    form_b = edit_form(erin, "living-13")  # both start from version 0
    form_a.update(notes="Eddie's note", note="from eddie")
    assert (
        eddie.post("/initiatives/living-13/edit", data=form_a, follow_redirects=False).status_code
        == 303
    )
    form_b.update(notes="Erin's note", note="from erin")
    r = erin.post("/initiatives/living-13/edit", data=form_b)
    assert r.status_code == 409
    assert "Someone else changed this initiative" in r.text
    assert "from eddie" in r.text and "Erin&#39;s note" in r.text
    item = app.state.portal.get("living-13")
    assert item.notes == "Eddie's note"  # no silent overwrite
    # The conflict page re-bases the form on version 1: a deliberate second save goes through.
    assert 'name="version" value="1"' in r.text
    form_b["version"] = "1"
    assert (
        erin.post("/initiatives/living-13/edit", data=form_b, follow_redirects=False).status_code
        == 303
    )
    assert [e.username for e in app.state.portal.history("living-13")] == ["eddie", "erin"]


def test_chinese_edit_flow(app: FastAPI) -> None:
    c = client_for(app, "eddie")
    form = edit_form(c, "mobility-02")
    form.update(title_zh_hant="策略性道路交通探測器及行車速度圖", note="加入中文標題")
    r = c.post("/zh-hant/initiatives/mobility-02/edit", data=form, follow_redirects=False)
    assert r.headers["location"] == "/zh-hant/initiatives/mobility-02?saved=1#history"
    page = c.get("/zh-hant/initiatives/mobility-02").text
    assert "<h1>策略性道路交通探測器及行車速度圖</h1>" in page and "加入中文標題" in page
    assert c.get("/initiatives?q=行車速度").text.count("mobility-02") >= 1
