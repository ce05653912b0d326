"""Drive the demo and the inspector in Debian's headless chromium through Playwright.

Playwright uses the system browser (`/usr/bin/chromium`, apt package `chromium`, which
`.ci/run` installs); it never downloads one. Each page gets its own browser context
(its own storage, so no BroadcastChannel or localStorage is shared: whatever two
pages share went through the server) and a console watch: any console error or
uncaught exception is recorded, and `Pages.close()` fails the test on it.

    with Pages(browser) as pages:
        ada = pages.open(server.http_url + "/?room=r", name="Ada")
        ...
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

CHROMIUM = "/usr/bin/chromium"
# Playwright adds --headless and a fresh --user-data-dir of its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parent.parent / "artifacts"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 390, "height": 800}
TIMEOUT_MS = 10_000


def launch(playwright: Playwright) -> Browser:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        raise RuntimeError(
            "the browser tests need Debian's chromium at /usr/bin/chromium "
            "(apt-get install chromium; .ci/run installs it)"
        )
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


class Pages:
    """Pages, each in its own context, with their console errors collected."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: list[BrowserContext] = []
        self.errors: list[str] = []

    def open(
        self,
        url: str,
        *,
        name: str | None = None,
        color: str = "#2563eb",
        viewport: dict[str, int] = WIDE,
        wait_synced: bool = True,
    ) -> Page:
        """A new page at `url`; `name`/`color` are the demo's stored identity."""
        context = self.browser.new_context(viewport=viewport)
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        if name is not None:
            context.add_init_script(
                f"localStorage.setItem('ysync-demo-name', {name!r});"
                f"localStorage.setItem('ysync-demo-color', {color!r});"
            )
        page = context.new_page()
        label = name or url

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{label}: console error: {message.text} ({message.location})")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.errors.append(f"{label}: uncaught: {error}"))
        page.goto(url)
        if wait_synced:
            wait_synced_status(page)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()
        assert not self.errors, "browser console errors:\n" + "\n".join(self.errors)

    def __enter__(self) -> Pages:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_synced_status(page: Page) -> None:
    page.wait_for_selector('#status[data-state="synced"]')


def doc_json(page: Page) -> Any:
    """The page's Y.Doc as JSON (ysyncDemo is the demo's console handle)."""
    return page.evaluate("() => ysyncDemo.doc.toJSON()")
