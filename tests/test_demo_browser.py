"""The demo and the inspector in a real headless chromium, against a real ysync process.

Each page runs the bundled demo (real Yjs, y-websocket, y-prosemirror) in its own
browser context, so whatever two pages share went through the server. Every wait is
on something the page shows, under Playwright's timeout; any console error fails
the test (see tests/browser.py). Screenshots of each step go to tests/artifacts/.
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from support.authtokens import SECRET, hs256
from support.browser import (
    ARTIFACTS,
    NARROW,
    WIDE,
    Pages,
    doc_json,
    launch,
    screenshot,
    wait_synced_status,
)
from support.servers import YsyncProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    with Pages(browser) as pages:
        yield pages


def demo_url(server: YsyncProcess, room: str) -> str:
    return f"{server.http_url}/?room={room}"


def element_box(page: Page, index: int = 0) -> dict[str, float]:
    box = page.locator("#layer-elements .el").nth(index).bounding_box()
    assert box is not None
    return box


def element(page: Page, index: int = 0) -> dict[str, object]:
    """The fields of the page's `index`-th element (in id order) from its Y.Doc."""
    return page.evaluate(
        """(i) => { const m = ysyncDemo.doc.getMap('elements');
                    const id = [...m.keys()].sort()[i]; return m.get(id).toJSON() }""",
        index,
    )


def wait_element(page: Page, expected: dict[str, object], index: int = 0) -> None:
    """Wait until the page's element has `expected` fields in its doc and is drawn there."""
    page.wait_for_function(
        """([i, want]) => { const m = ysyncDemo.doc.getMap('elements');
              const id = [...m.keys()].sort()[i]; const el = id && m.get(id);
              if (!el || !Object.entries(want).every(([k, v]) => el.get(k) === v)) return false;
              const node = document.querySelector(`#layer-elements .el[data-id="${id}"]`);
              return node && node.getAttribute('transform') === `translate(${el.get('x')} ${el.get('y')})` }""",
        arg=[index, expected],
    )


def drag(page: Page, start: tuple[float, float], by: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + by[0], start[1] + by[1], steps=8)
    page.mouse.up()


def editor_text(page: Page) -> str:
    """The text in the page's editor, without the other people's caret labels."""
    return page.evaluate(
        """() => { const copy = document.querySelector('#editor .ProseMirror').cloneNode(true);
                   copy.querySelectorAll('.ProseMirror-yjs-cursor').forEach((c) => c.remove());
                   return copy.textContent }"""
    )


def test_two_pages_type_in_one_text_and_see_each_others_named_caret(
    server: YsyncProcess, pages: Pages
) -> None:
    room = "browser-text"
    ada = pages.open(demo_url(server, room), name="Ada", color="#e11d48")
    grace = pages.open(demo_url(server, room), name="Grace", color="#16a34a")
    ada.click("#editor .ProseMirror")
    ada.keyboard.type("Hello from Ada.")
    grace.locator("#editor .ProseMirror").get_by_text("Hello from Ada.").wait_for()
    grace.click("#editor .ProseMirror")
    grace.keyboard.press("End")
    grace.keyboard.type(" Grace was here.")
    ada.locator("#editor .ProseMirror").get_by_text("Hello from Ada. Grace was here.").wait_for()
    # Each sees the other's caret, labelled with the other's name, in the other's color.
    grace_caret = ada.locator('.ProseMirror-yjs-cursor[data-name="Grace"]')
    grace_caret.wait_for()
    assert grace_caret.locator("div").inner_text() == "Grace"
    assert "rgb(22, 163, 74)" in grace_caret.evaluate("e => getComputedStyle(e).borderLeftColor")
    grace.locator('.ProseMirror-yjs-cursor[data-name="Ada"]').wait_for()
    assert ada.locator('.ProseMirror-yjs-cursor[data-name="Ada"]').count() == 0  # not our own
    assert editor_text(ada) == editor_text(grace) == "Hello from Ada. Grace was here."
    screenshot(ada, "text-1-ada-sees-grace")
    screenshot(grace, "text-2-grace-sees-ada")


def test_canvas_edits_reach_the_other_page(server: YsyncProcess, pages: Pages) -> None:
    room = "browser-canvas"
    ada = pages.open(demo_url(server, room), name="Ada")
    grace = pages.open(demo_url(server, room), name="Grace")
    ada.click('[data-add="rect"]')
    grace.locator("#layer-elements .el").wait_for()
    start = element(ada)
    wait_element(grace, {"x": start["x"], "y": start["y"], "type": "rect"})
    screenshot(grace, "canvas-1-grace-sees-new-shape")

    # Drag: Grace sees it move to where Ada put it, and sees Ada's selection on it.
    box = element_box(ada)
    drag(ada, (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2), (200, 120))
    moved = {"x": start["x"] + 200, "y": start["y"] + 120}
    wait_element(ada, moved)
    wait_element(grace, moved)
    grace.locator(".remote-selection").wait_for()
    screenshot(grace, "canvas-2-grace-sees-the-drag")

    # Resize from the corner handle.
    box = element_box(ada)
    drag(ada, (box["x"] + box["width"] - 2, box["y"] + box["height"] - 2), (40, 30))
    wait_element(grace, {"w": start["w"] + 40, "h": start["h"] + 30})

    # Recolor and delete.
    ada.click('.swatch[data-color="#bfdbfe"]')
    wait_element(grace, {"color": "#bfdbfe"})
    expect(grace.locator("#layer-elements .el .shape")).to_have_attribute("fill", "#bfdbfe")
    ada.click("#delete-element")
    grace.locator("#layer-elements .el").wait_for(state="detached")
    assert doc_json(grace)["elements"] == {}


def test_a_shape_being_dragged_is_locked_for_the_other_page_until_released(
    server: YsyncProcess, pages: Pages
) -> None:
    room = "browser-locks"
    ada = pages.open(demo_url(server, room), name="Ada")
    grace = pages.open(demo_url(server, room), name="Grace")
    ada.click('[data-add="rect"]')
    start = element(ada)
    wait_element(grace, {"x": start["x"], "y": start["y"]})

    # Ada presses on the shape and moves it without releasing: the server's lock
    # state (client 0xFFFFFFFF) names her connection, and Grace sees it greyed with her name.
    box = element_box(ada)
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    ada.mouse.move(x, y)
    ada.mouse.down()
    ada.mouse.move(x + 60, y + 40, steps=4)
    moved = {"x": start["x"] + 60, "y": start["y"] + 40}
    wait_element(grace, moved)
    grace.locator('#layer-elements .el.locked[data-locked-by="Ada"]').wait_for()
    expect(grace.locator("#layer-locks .lock-badge")).to_have_text("🔒 Ada")
    assert ada.evaluate("() => ysyncDemo.provider.awareness.getStates().has(0xFFFFFFFF)")
    assert ada.locator(".el.locked, .lock-badge").count() == 0  # her own lock does not stop her
    expect(grace.locator("#presence .avatar")).to_have_count(2)  # the lock state is nobody
    screenshot(grace, "locks-1-grace-sees-ada-dragging")

    # Grace cannot drag it (a drag applies to her own doc at once when it works).
    gbox = element_box(grace)
    drag(grace, (gbox["x"] + gbox["width"] / 2, gbox["y"] + gbox["height"] / 2), (100, 100))
    assert {k: element(grace)[k] for k in ("x", "y")} == moved

    # Ada releases: the lock goes, and now Grace's drag moves it for both.
    ada.mouse.up()
    expect(grace.locator("#layer-elements .el.locked")).to_have_count(0)
    expect(grace.locator("#layer-locks .lock-badge")).to_have_count(0)
    gbox = element_box(grace)
    drag(grace, (gbox["x"] + gbox["width"] / 2, gbox["y"] + gbox["height"] / 2), (100, 100))
    wait_element(ada, {"x": moved["x"] + 100, "y": moved["y"] + 100})
    expect(ada.locator("#layer-elements .el.locked")).to_have_count(0)

    # Moving with the keys holds the lock too, until a second after the last key.
    grace.keyboard.press("ArrowRight")  # the shape she dragged has the focus
    wait_element(ada, {"x": moved["x"] + 110})
    ada.locator('#layer-elements .el.locked[data-locked-by="Grace"]').wait_for()
    ada.locator("#layer-elements .el.locked").wait_for(state="detached")
    screenshot(ada, "locks-2-released-and-moved-by-grace")


def test_a_cursor_from_one_page_appears_on_the_other(server: YsyncProcess, pages: Pages) -> None:
    room = "browser-cursor"
    ada = pages.open(demo_url(server, room), name="Ada", color="#7c3aed")
    grace = pages.open(demo_url(server, room), name="Grace")
    # Ada's page notes when each pointer move happens; Grace's when each of Ada's
    # cursor positions is drawn. Both are Unix-epoch milliseconds of one machine.
    ada.evaluate(
        """() => { window.sent = {}; const svg = document.getElementById('canvas');
             svg.addEventListener('pointermove', (e) => { const b = svg.getBoundingClientRect();
               window.sent[`${Math.round(e.clientX - b.left)},${Math.round(e.clientY - b.top)}`] =
                 performance.timeOrigin + e.timeStamp }, true) }"""
    )
    grace.evaluate(
        """() => { window.seen = {}; new MutationObserver(() => {
             for (const c of document.querySelectorAll('#layer-cursors .cursor[data-name="Ada"]')) {
               const key = `${c.dataset.x},${c.dataset.y}`;
               if (!(key in window.seen)) window.seen[key] = performance.timeOrigin + performance.now() }
           }).observe(document.getElementById('layer-cursors'), {childList: true, subtree: true}) }"""
    )
    origin = ada.locator("#canvas").bounding_box()
    assert origin is not None
    latencies = []
    for i in range(20):
        x, y = 120 + 17 * i, 200 + 9 * i
        ada.mouse.move(origin["x"] + x, origin["y"] + y)
        key = f"{x},{y}"
        grace.wait_for_function("(key) => key in window.seen", arg=key)
        sent = ada.evaluate("(key) => window.sent[key]", key)
        latencies.append(grace.evaluate("(key) => window.seen[key]", key) - sent)
    label = grace.locator('#layer-cursors .cursor[data-name="Ada"]')
    assert label.locator("text").text_content() == "Ada"
    assert label.locator("path").get_attribute("fill") == "#7c3aed"
    screenshot(grace, "cursor-1-grace-sees-ada")
    report = {
        "samples": len(latencies),
        "median_ms": round(statistics.median(latencies), 1),
        "max_ms": round(max(latencies), 1),
        "all_ms": [round(v, 1) for v in latencies],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "cursor-latency.json").write_text(json.dumps(report, indent=1))
    print(f"cursor latency, pointer move on page A -> drawn on page B: {report}")


def test_inspector_shows_the_room_its_clients_and_the_document(
    server: YsyncProcess, pages: Pages
) -> None:
    room = "browser-inspect"
    ada = pages.open(demo_url(server, room), name="Ada")
    grace = pages.open(demo_url(server, room), name="Grace")
    ada.click('[data-add="sticky"]')
    ada.click("#editor .ProseMirror")
    ada.keyboard.type("Inspect me")
    grace.locator("#editor .ProseMirror").get_by_text("Inspect me").wait_for()

    inspector = pages.open(f"{server.http_url}/inspect?room={room}", wait_synced=False)
    api_calls: list[float] = []
    thread_calls: list[float] = []

    def on_request(request: Request) -> None:
        if request.url.endswith("/api/rooms"):
            api_calls.append(time.monotonic())
        elif "/threads?" in request.url:
            thread_calls.append(time.monotonic())

    inspector.on("request", on_request)
    row = inspector.locator(f'#rooms tr[data-room="{room}"]')
    # Ada, Grace and the inspector itself are connected ...
    row.locator("td").nth(1).filter(has_text="3").wait_for()
    inspector.locator("#connections tbody tr").nth(2).wait_for()
    assert inspector.locator("#connections tbody tr").count() == 3
    # ... but only Ada and Grace have presence: the inspector sets none.
    awareness = inspector.locator("#awareness tbody tr")
    awareness.nth(1).wait_for()
    names = sorted(awareness.nth(i).locator("td").nth(1).inner_text() for i in range(2))
    assert names == ["Ada", "Grace"]
    assert awareness.count() == 2
    expect(ada.locator("#presence .avatar")).to_have_count(2)
    # The document as JSON: the sticky note and the text.
    tree = inspector.locator("#document")
    tree.get_by_text('"Inspect me"').wait_for()
    assert tree.get_by_text('"sticky"').count() == 1
    assert inspector.locator("#node dd").nth(3).inner_text() == "yes"  # ready
    assert inspector.locator("#node dd").nth(4).inner_text() == "healthy"  # store
    screenshot(inspector, "inspect-1-room-clients-document")
    # Comment counts, kept up to date from the room's event feed, which it lists.
    comments = inspector.locator("#comment-facts dd")
    expect(comments).to_have_text(["0", "0", "0"])
    threads = f"{server.http_url}/api/rooms/{room}/threads"
    status, thread = post_json(threads, {"body": body("First")})
    assert status == 201, thread
    status, _ = post_json(f"{threads}/{thread['id']}/comments", {"body": body("Second")})
    assert status == 201
    expect(comments).to_have_text(["1", "0", "2"])
    events = inspector.locator("#events li")
    expect(events.first).to_have_attribute("data-type", "comment.created")
    expect(events.nth(1)).to_have_attribute("data-type", "thread.created")
    screenshot(inspector, "inspect-2-comment-counts-and-events")
    # The counts too: however many events came, at most one count a second.
    gaps = [b - a for a, b in itertools.pairwise(thread_calls)]
    assert thread_calls and all(gap > 0.9 for gap in gaps), gaps
    # Never more than once a second.
    gaps = [b - a for a, b in itertools.pairwise(api_calls)]
    assert all(gap > 0.9 for gap in gaps), gaps


def test_edits_made_offline_merge_on_reconnect(server: YsyncProcess, pages: Pages) -> None:
    room = "browser-offline"
    ada = pages.open(demo_url(server, room), name="Ada")
    grace = pages.open(demo_url(server, room), name="Grace")
    ada.context.set_offline(True)
    ada.wait_for_selector('#status[data-state="offline"]')
    # Offline, Ada's page shows nobody else (the server notices Ada's silence later).
    ada.locator('#presence .avatar[data-name="Grace"]').wait_for(state="detached")
    ada.click('[data-add="rect"]')
    ada.click("#editor .ProseMirror")
    ada.keyboard.type("Written offline.")
    grace.click('[data-add="sticky"]')
    grace.click("#editor .ProseMirror")
    grace.keyboard.type("Written online.")
    # A comment pinned meanwhile reaches Ada once she is back online.
    anchor = {"kind": "point", "x": 500, "y": 300}
    status, _ = post_json(
        f"{server.http_url}/api/rooms/{room}/threads", {"body": body("Meanwhile"), "anchor": anchor}
    )
    assert status == 201
    grace.locator("#layer-pins .pin").wait_for()
    screenshot(ada, "offline-1-ada-offline")
    assert len(doc_json(grace)["elements"]) == 1  # Ada's shape has not reached Grace
    assert ada.locator("#layer-pins .pin").count() == 0

    ada.context.set_offline(False)
    ada.wait_for_selector('#status[data-state="synced"]')
    for page in (ada, grace):
        page.wait_for_function("() => ysyncDemo.doc.getMap('elements').size === 2")
        page.locator("#editor .ProseMirror").get_by_text("Written offline.").wait_for()
        page.locator("#editor .ProseMirror").get_by_text("Written online.").wait_for()
    assert json.dumps(doc_json(ada), sort_keys=True) == json.dumps(doc_json(grace), sort_keys=True)
    expect(ada.locator("#layer-pins .pin")).to_have_attribute("transform", "translate(500 300)")
    assert editor_text(ada) == editor_text(grace)
    screenshot(ada, "offline-2-ada-converged")
    screenshot(grace, "offline-3-grace-converged")


def focused(page: Page) -> str:
    return page.evaluate(
        "() => { const e = document.activeElement;"
        " return e.dataset.add || e.dataset.id && 'element' || e.id || e.tagName }"
    )


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280x800", "narrow"])
def test_canvas_tools_work_from_the_keyboard(
    server: YsyncProcess, pages: Pages, viewport: dict[str, int]
) -> None:
    room = f"browser-keys-{viewport['width']}"
    page = pages.open(demo_url(server, room), name="Kim", viewport=viewport)
    # The page fits the window: nothing sticks out sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    for _ in range(40):  # Tab to the rectangle tool
        if focused(page) == "rect":
            break
        page.keyboard.press("Tab")
    assert focused(page) == "rect"
    page.keyboard.press("Enter")
    page.locator("#layer-elements .el").wait_for()
    assert focused(page) == "element"  # the new element has the focus, selected
    start = element(page)
    for key in ["ArrowRight", "ArrowRight", "ArrowRight", "ArrowDown", "Shift+ArrowLeft"]:
        page.keyboard.press(key)
    wait_element(page, {"x": start["x"] + 29, "y": start["y"] + 10})
    page.keyboard.press("Alt+ArrowRight")
    wait_element(page, {"w": start["w"] + 10})
    page.keyboard.press("Enter")  # write on it
    page.keyboard.type("Keyboard")
    page.keyboard.press("Enter")
    wait_element(page, {"text": "Keyboard"})
    assert focused(page) == "element"
    screenshot(page, f"keyboard-1-{viewport['width']}")
    page.keyboard.press("Delete")
    page.locator("#layer-elements .el").wait_for(state="detached")
    assert doc_json(page)["elements"] == {}
    if viewport is NARROW:  # one view at a time, switched by the tabs
        assert page.locator("#text-panel").is_hidden()
        page.click("#tab-text")
        page.locator("#editor .ProseMirror").wait_for()
        assert page.locator("#canvas-panel").is_hidden()
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
        screenshot(page, "keyboard-2-narrow-text")


def body(text: str) -> dict[str, object]:
    """A one-paragraph comment body."""
    return {"version": 1, "content": [{"type": "paragraph", "children": [{"text": text}]}]}


def post_json(url: str, body: object) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def test_with_auth_the_demo_uses_dev_tokens(browser: Browser, tmp_path_factory) -> None:
    log = tmp_path_factory.mktemp("dev-tokens") / "ysync.log"
    flags = ("--auth", "jwt", "--jwt-secret", SECRET, "--demo-dev-tokens")
    # The pages close before their server stops (they would try to reconnect).
    with YsyncProcess(*flags, log_path=log) as server, Pages(browser) as pages:
        page = pages.open(demo_url(server, "auth-dev"), name="Ada")
        page.click('[data-add="ellipse"]')
        inspector = pages.open(f"{server.http_url}/inspect?room=auth-dev", wait_synced=False)
        inspector.locator("#connections tbody tr").nth(1).wait_for()
        users = inspector.locator("#connections tbody tr td:nth-child(2)").all_inner_texts()
        assert any(user.startswith("Ada (demo-") for user in users), users
        inspector.locator("#document").get_by_text('"ellipse"').wait_for()
        # Comments with the token: the author is its subject; the inspector counts them.
        page.keyboard.press("c")
        page.keyboard.type("With a token")
        page.keyboard.press("Control+Enter")
        author = page.locator("#thread-popover .comment .author")
        author.wait_for()
        assert author.inner_text().startswith("demo-")
        expect(inspector.locator("#comment-facts dd")).to_have_text(["1", "0", "1"])
        screenshot(inspector, "auth-1-inspector-with-dev-token")
        # Versions with the token: saved by its subject, listed through the Bearer header.
        page.click("#history-tool")
        page.keyboard.type("With a token")
        page.keyboard.press("Enter")
        expect(page.locator("#history-items .author")).to_have_count(1)
        assert page.locator("#history-items .author").inner_text().startswith("demo-")
        # A viewer's page lists and previews versions but offers no Save or Restore.
        status, viewer = post_json(f"{server.http_url}/demo/token", {"role": "viewer"})
        assert status == 200
        reader = pages.open(demo_url(server, "auth-dev"), name="Vi")
        reader.evaluate("(t) => sessionStorage.setItem('ysync-token:editor', t)", viewer["token"])
        reader.reload()
        wait_synced_status(reader)
        reader.click("#history-tool")
        expect(reader.locator("#history-items [data-version] .preview")).to_have_count(1)
        expect(reader.locator("#version-form")).to_be_hidden()
        expect(reader.locator("#history-items .restore")).to_have_count(0)


def test_with_auth_and_no_dev_tokens_the_demo_asks_for_a_token(
    browser: Browser, tmp_path_factory
) -> None:
    log = tmp_path_factory.mktemp("no-dev-tokens") / "ysync.log"
    flags = ("--auth", "jwt", "--jwt-secret", SECRET)
    with YsyncProcess(*flags, log_path=log) as server, Pages(browser) as pages:
        status, body = post_json(server.http_url + "/demo/token", {})
        assert status == 404, body  # the dev-token endpoint exists only with the flag
        page = pages.open(demo_url(server, "auth-paste"), name="Ada", wait_synced=False)
        page.locator("#token-dialog").wait_for()
        screenshot(page, "auth-2-token-dialog")
        # What a backend would mint (this server checks no audience or issuer).
        expires = int(time.time()) + 300
        token = hs256(
            {"sub": "ada", "name": "Ada L.", "rooms": {"auth-*": "editor"}, "exp": expires}
        )
        page.fill("#token-input", token)
        page.click("#token-form button[type=submit]")
        page.wait_for_selector('#status[data-state="synced"]')
        page.click('[data-add="rect"]')
        page.locator("#layer-elements .el").wait_for()


def pin_transform(page: Page) -> str | None:
    return page.locator("#layer-pins .pin").first.get_attribute("transform")


def test_comment_pins_threads_replies_reactions_and_resolve_go_live_to_the_other_page(
    server: YsyncProcess, pages: Pages
) -> None:
    room = "browser-comments"
    ada = pages.open(demo_url(server, room), name="Ada")
    grace = pages.open(demo_url(server, room), name="Grace")
    ada.click('[data-add="rect"]')
    grace.locator("#layer-elements .el").wait_for()
    # Ada pins a comment on a point of the shape: Comment, then a click on the shape.
    ada.click("#canvas")  # nothing selected: the next click places the pin
    ada.click("#comment-tool")
    box = element_box(ada)
    ada.mouse.click(box["x"] + 30, box["y"] + 20)
    ada.locator("#thread-popover textarea").fill("Is this the right size? @grace")
    ada.click("#thread-popover button[type=submit]")
    ada.locator("#thread-popover .comment").wait_for()
    expect(ada.locator('#thread-popover textarea[aria-label="Reply"]')).to_have_value("")
    screenshot(ada, "comments-1-ada-pins-a-comment")

    # Grace sees the pin, on the shape, and opens the thread.
    pin = grace.locator("#layer-pins .pin")
    pin.wait_for()
    assert pin.get_attribute("aria-label") == "Comment by anonymous: Is this the right size? @grace"
    before = pin_transform(grace)
    pin.click()
    thread = grace.locator("#thread-popover")
    thread.get_by_text("Is this the right size?").wait_for()
    assert thread.locator(".mention").inner_text() == "@grace"
    # She replies and reacts; Ada's open thread shows both, from the event feed.
    thread.locator("textarea").fill("Make it wider")
    thread.locator("button[type=submit]").click()
    thread.locator(".comment").nth(1).wait_for()
    thread.locator(".comment").first.locator('.reaction[data-emoji="👍"]').click()
    ada_thread = ada.locator("#thread-popover")
    ada_thread.locator(".comment").nth(1).get_by_text("Make it wider").wait_for()
    expect(ada_thread.locator(".comment").first.locator('.reaction[data-emoji="👍"]')).to_have_text(
        "👍 1"
    )
    expect(ada.locator("#layer-pins .pin .pin-count")).to_have_text("2")
    screenshot(grace, "comments-2-grace-replies-and-reacts")
    screenshot(ada, "comments-3-ada-sees-the-reply")

    # The pin moves with its shape.
    ada.locator("#layer-elements .el").first.focus()
    ada.keyboard.press("ArrowRight")
    grace.wait_for_function(
        "(before) => document.querySelector('#layer-pins .pin').getAttribute('transform') !== before",
        arg=before,
    )
    x, y = before.removeprefix("translate(").removesuffix(")").split()
    assert pin_transform(grace) == f"translate({float(x) + 10:g} {y})"

    # A click on the empty canvas closes Grace's thread.
    canvas = grace.locator("#canvas").bounding_box()
    assert canvas is not None
    grace.mouse.click(canvas["x"] + 700, canvas["y"] + 600)
    expect(thread).to_be_hidden()

    # Ada resolves it: the pin goes away on both pages; the list keeps it, resolved.
    ada_thread.locator(".resolve").click()
    grace.locator("#layer-pins .pin").wait_for(state="detached")
    expect(grace.locator("#comments-list summary")).to_have_text("Comments (0 open)")
    grace.click("#comments-list summary")
    expect(grace.locator("#comments-list-items button.resolved")).to_have_count(1)
    screenshot(grace, "comments-4-resolved")


def test_comments_work_from_the_keyboard_in_a_narrow_window(
    server: YsyncProcess, pages: Pages
) -> None:
    room = "browser-comment-keys"
    page = pages.open(demo_url(server, room), name="Kim", viewport=NARROW)
    page.click('[data-add="sticky"]')
    assert focused(page) == "element"
    page.keyboard.press("c")  # a thread on the focused element
    assert focused(page) == "TEXTAREA"
    page.keyboard.type("Typed, not clicked")
    page.keyboard.press("Control+Enter")
    popover = page.locator("#thread-popover")
    popover.locator(".comment").get_by_text("Typed, not clicked").wait_for()
    box = popover.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"]
    screenshot(page, "comments-5-keyboard-narrow")
    page.keyboard.press("Escape")  # closes it; the focus goes to its pin
    expect(popover).to_be_hidden()
    assert page.evaluate("document.activeElement.dataset.thread") is not None
    page.keyboard.press("Enter")
    expect(popover).to_be_visible()
    assert focused(page) == "TEXTAREA"
    page.keyboard.type("A reply")
    page.keyboard.press("Control+Enter")
    expect(popover.locator(".comment")).to_have_count(2)
    expect(page.locator("#layer-pins .pin .pin-count")).to_have_text("2")
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]


def history_names(page: Page) -> list[str]:
    return page.locator("#history-items [data-version] .name").all_inner_texts()


def test_history_saves_previews_and_restores_a_version_on_both_pages(
    server: YsyncProcess, pages: Pages
) -> None:
    room = "browser-history"
    ada = pages.open(demo_url(server, room), name="Ada")
    grace = pages.open(demo_url(server, room), name="Grace")
    ada.click('[data-add="rect"]')
    v1 = element(ada)
    wait_element(grace, {"x": v1["x"], "y": v1["y"], "color": v1["color"]})
    # Grace's panel is open before the version exists: the feed brings it in.
    grace.click("#history-tool")
    expect(grace.locator("#history-items")).to_have_text("No versions yet. Save one above.")

    # Ada saves "v1" from the keyboard, then moves and recolors the shape.
    ada.click("#history-tool")
    assert focused(ada) == "version-name"
    ada.keyboard.type("v1")
    ada.keyboard.press("Enter")
    expect(ada.locator("#history-items [data-version]")).to_have_count(1)
    row = grace.locator("#history-items [data-version]")
    expect(row.locator(".name")).to_have_text("v1")  # from version.created on the feed
    expect(row.locator(".kind")).to_have_text("Named")
    expect(row.locator(".author")).to_have_text("anonymous")  # auth off: the server's user
    ada.locator("#layer-elements .el").first.focus()
    for _ in range(3):
        ada.keyboard.press("ArrowDown")
    ada.click('.swatch[data-color="#bfdbfe"]')
    moved = {"x": v1["x"], "y": v1["y"] + 30, "color": "#bfdbfe"}
    wait_element(grace, moved)
    screenshot(ada, "history-1-ada-saved-v1-and-moved-on")

    # Grace previews v1: its old place and color, read-only, instead of the live canvas.
    row.locator(".preview").click()
    preview = grace.locator("#preview-canvas")
    expect(preview).to_be_visible()
    expect(grace.locator("#canvas")).to_be_hidden()
    expect(grace.locator("#preview-bar .what")).to_contain_text("Preview of “v1”")
    shape = preview.locator(".el")
    expect(shape).to_have_count(1)
    expect(shape).to_have_attribute("transform", f"translate({v1['x']} {v1['y']})")
    expect(shape.locator(".shape")).to_have_attribute("fill", str(v1["color"]))
    assert element(grace)["color"] == "#bfdbfe"  # the document itself is untouched
    screenshot(grace, "history-2-grace-previews-v1")

    # She restores it from the preview; the confirmation is answered from the keyboard.
    grace.click("#preview-bar .restore")
    assert grace.evaluate("document.activeElement.className") == "no"  # Cancel first
    grace.keyboard.press("Shift+Tab")
    grace.keyboard.press("Enter")
    back = {"x": v1["x"], "y": v1["y"], "color": v1["color"]}
    wait_element(grace, back)
    wait_element(ada, back)
    expect(grace.locator("#canvas")).to_be_visible()
    expect(preview).to_be_hidden()
    # Both lists show the restore on top, then the state it replaced, then v1.
    for page in (grace, ada):
        expect(page.locator("#history-items [data-version]")).to_have_count(3)
        assert history_names(page)[0] == "Restored v1"
        kinds = page.locator("#history-items [data-version]").evaluate_all(
            "rows => rows.map((r) => r.dataset.kind)"
        )
        assert kinds == ["restore", "pre-restore", "named"]
    screenshot(ada, "history-3-both-back-at-v1")


def test_history_works_from_the_keyboard_in_a_narrow_window(
    server: YsyncProcess, pages: Pages
) -> None:
    page = pages.open(demo_url(server, "browser-history-keys"), name="Kim", viewport=NARROW)
    page.locator("#history-tool").focus()
    page.keyboard.press("Enter")
    panel = page.locator("#history-panel")
    expect(panel).to_be_visible()
    assert focused(page) == "version-name"
    page.keyboard.type("First draft")
    page.keyboard.press("Enter")
    expect(page.locator("#history-items .name")).to_have_text("First draft")
    box = panel.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    screenshot(page, "history-4-keyboard-narrow")
    page.keyboard.press("Escape")  # closes it; the focus goes back to the History button
    expect(panel).to_be_hidden()
    assert focused(page) == "history-tool"
