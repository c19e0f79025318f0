"""The catalogue explorer as a person uses it, in headless Chromium (Debian's package, driven by
Playwright; no browser is downloaded): search, narrow with a filter, open a course and see
similar courses; a learner page that says so when there is nothing to show."""

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.run import DEMO_CATALOG
from devstack.stack import LocalStack, free_port
from tests.support.http import accept, wait_task

CHROMIUM = next(
    (path for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(path)),
    None,
)
# Without the background-networking flags Chromium's own connections crowd out the page's.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def explorer(stack: LocalStack, api: httpx.Client) -> Iterator[str]:
    courses = json.loads(DEMO_CATALOG.read_text())
    assert wait_task(api, accept(api.post("/v1/courses/bulk", json=courses)))["status"] == (
        "succeeded"
    )
    port = free_port()
    process = stack.start_explorer(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="coursewise-chromium-"))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


def captions(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.locator(
        '[data-testid="stMain"] [data-testid="stCaptionContainer"]'
    ).all_inner_texts()


def test_search_filter_and_similar_courses(explorer: str, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(explorer)
    box = page.get_by_label("What do you want to learn?")
    box.fill("python programming")
    box.press("Enter")
    expect(page.get_by_text(re.compile(r'result\(s\) for "python programming"'))).to_be_visible()
    beginner = "Python Foundations: From Zero to Useful Scripts"
    expect(page.get_by_role("button", name=beginner, exact=True).first).to_be_visible()
    before = captions(page)
    assert len(before) >= 3
    assert any("Level: advanced" not in caption for caption in before)

    page.get_by_text("advanced", exact=True).click()
    title = "Advanced Python Concurrency with asyncio"
    expect(page.get_by_role("button", name=beginner, exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name=title, exact=True).first).to_be_visible()
    after = captions(page)
    assert after and all("Level: advanced" in caption for caption in after)

    page.get_by_role("button", name=title, exact=True).first.click()
    expect(page.get_by_role("heading", name=title, exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Similar courses")).to_be_visible()
    expect(page.get_by_text("Skills: python")).to_be_visible()
    similar = page.locator('[data-testid="stMain"] button[kind="tertiary"]')
    expect(similar.first).to_be_visible()
    names = similar.all_inner_texts()
    assert names and any(name != title for name in names)
    assert "python-async-concurrency" in page.url  # the address can be shared
    page.close()


def test_learner_page_says_when_there_is_nothing_to_show(explorer: str, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{explorer}/?learner=nobody-{os.getpid()}")
    expect(page.get_by_role("heading", name=f"Learner nobody-{os.getpid()}")).to_be_visible()
    expect(page.get_by_text(re.compile("No such learner|No recommendations yet"))).to_be_visible()
    page.close()


def test_learner_page_shows_explained_recommendations(  # type: ignore[no-untyped-def]
    explorer: str, browser, api: httpx.Client
) -> None:
    from playwright.sync_api import expect

    learner = f"explorer-learner-{os.getpid()}"
    profile = {"interests": "python programming and data analysis", "language": "en"}
    assert wait_task(api, accept(api.put(f"/v1/users/{learner}", json=profile)))["status"] == (
        "succeeded"
    )
    taken = {"user_id": learner, "course_id": "demo:python-foundations", "type": "complete"}
    task = wait_task(api, accept(api.post("/v1/interactions", json=[taken])))
    assert task["status"] == "succeeded", task

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{explorer}/?learner={learner}")
    expect(page.get_by_role("heading", name=f"Learner {learner}")).to_be_visible()
    expect(page.get_by_role("heading", name="Recommended for this learner")).to_be_visible()
    recommended = page.locator('[data-testid="stMain"] button[kind="tertiary"]')
    expect(recommended.first).to_be_visible()
    titles = recommended.all_inner_texts()
    # What they completed is never offered again; what is offered says why.
    assert titles and "Python Foundations: From Zero to Useful Scripts" not in titles
    assert any("python" in title.lower() for title in titles[:5])
    expect(
        page.locator('[data-testid="stMain"] [data-testid="stMarkdownContainer"]')
        .filter(has_text=re.compile(r"similar|interest|learners|popular", re.IGNORECASE))
        .first
    ).to_be_visible()
    page.close()


def test_search_shows_highlights_facets_and_suggestions(explorer: str, browser) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(explorer)
    box = page.get_by_label("What do you want to learn?")
    box.fill("python")
    box.press("Enter")
    main = page.locator('[data-testid="stMain"]')
    expect(page.get_by_text(re.compile(r'result\(s\) for "python"'))).to_be_visible()
    # The matched word is marked in a title, as HTML (not shown as a literal tag).
    expect(main.locator("mark").filter(has_text=re.compile("^python$", re.I)).first).to_be_visible()
    assert "<mark>" not in main.inner_text()

    sidebar = page.locator('[data-testid="stSidebar"]')
    advanced = sidebar.get_by_role("button", name=re.compile(r"^advanced \(\d+\)$"))
    expect(advanced).to_be_visible()
    expect(sidebar.get_by_text("Skills", exact=True)).to_be_visible()
    advanced.click()  # a facet value applies as its filter
    expect(sidebar.get_by_role("radio", name="advanced")).to_be_checked()
    expect(page.get_by_role("button", name=re.compile(r"^beginner \(\d+\)$"))).to_have_count(0)
    after = captions(page)
    assert after and all("Level: advanced" in caption for caption in after)

    # Suggestions follow the box's text (other tests may have loaded more Python courses).
    beginner = "Python Foundations: From Zero to Useful Scripts"
    box.fill("python foundations")
    box.press("Enter")
    suggestion = main.get_by_role("button", name=f"→ {beginner}", exact=True)
    expect(suggestion).to_be_visible()
    suggestion.click()
    expect(page.get_by_role("heading", name=beginner, exact=True)).to_be_visible()
    assert "python-foundations" in page.url
    page.close()
