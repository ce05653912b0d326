"""Make the README's screenshot of the demo, docs/demo.png, from a real ysync and chromium.

    .venv/bin/python tests/bench/demo_screenshot.py [OUT.png]

Three people (three browser contexts) on one room: shapes and sticky notes, a title,
text with a remote caret, a remote cursor and selection, and a comment thread with a
reply and a reaction, at 1280 x 800. The content is put in through the pages (their
Y.Doc and the comments API), so the picture shows what the demo draws. Not a test:
run it by hand after the look of the demo changes. Emoji need a color emoji font
(Debian: fonts-noto-color-emoji).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from playwright.sync_api import sync_playwright  # noqa: E402

from support.browser import Pages, launch  # noqa: E402
from support.servers import YsyncProcess  # noqa: E402

ROOM = "team/moodboard"
SHAPES = [
    ("sticky", 60, 50, 160, 160, "#fde68a", "Ship the demo on Friday"),
    ("rect", 556, 96, 160, 100, "#bfdbfe", "Canvas"),
    ("ellipse", 330, 436, 140, 100, "#bbf7d0", "Text"),
    ("sticky", 80, 420, 160, 160, "#fbcfe8", "Ask Linus about cursors"),
    ("rect", 540, 560, 160, 100, "#ddd6fe", "Inspector"),
]
FILL = """(shapes) => { const doc = ysyncDemo.doc; const Y = doc.getMap('elements').constructor;
  doc.transact(() => shapes.forEach(([type, x, y, w, h, color, text], i) => {
    const m = new Y(); doc.getMap('elements').set(`000000000-demo${i}`, m);
    Object.entries({type, x, y, w, h, color, text}).forEach(([k, v]) => m.set(k, v)) }));
  doc.getMap('metadata').set('title', 'Launch plan') }"""


def main(out: Path) -> None:
    with YsyncProcess() as server, sync_playwright() as playwright:
        browser = launch(playwright)
        url = f"{server.http_url}/?room={ROOM}"
        with Pages(browser) as pages:
            ada = pages.open(url, name="Ada Lovelace", color="#e11d48")
            linus = pages.open(url, name="Linus", color="#16a34a")
            grace = pages.open(url, name="Grace Hopper", color="#2563eb")
            ada.evaluate(FILL, SHAPES)
            for page in (linus, grace):
                page.wait_for_function("() => ysyncDemo.doc.getMap('elements').size === 5")
            ada.click("#editor .ProseMirror")
            ada.keyboard.type("Launch notes")
            ada.click('#text-toolbar button[title="Heading"]')
            ada.click("#editor .ProseMirror h1")
            ada.keyboard.press("End")
            ada.keyboard.press("Enter")
            ada.keyboard.type(
                "Shapes, sticky notes and this text share one room. Everyone sees the edits, "
                "the cursors and the comments live."
            )
            grace.locator("#editor .ProseMirror").get_by_text("Launch notes").wait_for()
            # Grace comments on the sticky note; Linus replies and reacts.
            grace.click("#comment-tool")
            box = grace.locator("#layer-elements .el").nth(0).bounding_box()
            assert box is not None
            grace.mouse.click(box["x"] + 140, box["y"] + 30)
            grace.fill("#thread-popover textarea", "Friday is tight: can we cut the export?")
            grace.click("#thread-popover button[type=submit]")
            pin = linus.locator("#layer-pins .pin")
            pin.wait_for()
            pin.click()
            linus.fill("#thread-popover textarea", "Yes, export goes to next week.")
            linus.click("#thread-popover button[type=submit]")
            linus.locator("#thread-popover .comment").nth(1).wait_for()
            linus.locator('#thread-popover .comment >> nth=0 >> .reaction[data-emoji="👍"]').click()
            linus.keyboard.press("Escape")
            # Ada opens the thread; Linus points at the ellipse and selects the last rect.
            ada.locator("#layer-pins .pin").click()
            ada.locator("#thread-popover .comment").nth(1).wait_for()
            ada.locator('#thread-popover .reaction[data-emoji="👍"]', has_text="1").wait_for()
            canvas = linus.locator("#canvas").bounding_box()
            assert canvas is not None
            linus.locator("#layer-elements .el").nth(4).focus()
            linus.mouse.move(canvas["x"] + 440, canvas["y"] + 470)
            ada.locator('#layer-cursors .cursor[data-name="Linus"]').wait_for()
            grace.click("#editor .ProseMirror h1")
            grace.keyboard.press("End")
            ada.locator('.ProseMirror-yjs-cursor[data-name="Grace Hopper"]').wait_for()
            ada.mouse.move(0, 0)
            out.parent.mkdir(parents=True, exist_ok=True)
            ada.screenshot(path=str(out))
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "docs" / "demo.png")
