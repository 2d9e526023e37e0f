"""The README's admin walkthrough in a real browser (headless Chromium) against the production server.

A new admin logs in, adds a Secret, an Llm using it, grants `run` on the Llm's "Object permissions"
page, issues an API token and copies it from the page; the token then works outside the browser.
Every page on the way, and the API docs, work under mcpd's Content-Security-Policy: the browser's
console (captured through goog:loggingPrefs) shows no refusal and no failed load.
Calls made through the server show on the usage dashboard.
The steps and the driver are in tests/e2e/browser.py; screenshots go to the `artifacts` directory.
"""

from __future__ import annotations

import time

import pytest
import requests
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from tests.e2e.browser import (
    add_llm,
    add_secret,
    assert_page_works,
    console_errors,
    grant_run,
    issue_token,
    log_in,
    screenshot,
    submit,
    wait,
)
from tests.fakes.upstream import HELLO, json_reply

pytestmark = pytest.mark.xdist_group("e2e")  # one server for every e2e test (run.sh: --dist loadgroup)

ADMIN, ADMIN_PASSWORD = "admin", "pw-admin-e2e-1234"
SECRET_VALUE = "sk-browser-TYPED-IN-THE-ADMIN-9876543210"
TRANSPARENT = ("rgba(0, 0, 0, 0)", "transparent")


def test_a_new_admin_sets_up_an_llm_and_a_token_in_the_browser(server, browser, upstream, artifacts):
    url = server.url
    server.manage("createsuperuser", "--noinput", "--username", ADMIN, "--email", "admin@example.com",
                  env={"DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD})
    server.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                 "User.objects.create_user('reg', password='pw-reg-e2e-1234')")

    # Log in.
    browser.get(f"{url}/admin/")
    assert "/admin/login/" in browser.current_url
    assert_page_works(browser, "the login page")
    browser.find_element(By.ID, "id_username").send_keys(ADMIN)
    browser.find_element(By.ID, "id_password").send_keys(ADMIN_PASSWORD)
    submit(browser, "input[type=submit]")
    assert browser.find_element(By.ID, "site-name").text == "mcpd administration"
    assert "LLM gateway" in browser.title
    assert_page_works(browser, "the admin index")

    # Styled with DEBUG off: the hashed stylesheets loaded through whitenoise.
    header_bg = browser.execute_script("return getComputedStyle(document.getElementById('header')).backgroundColor")
    assert header_bg not in TRANSPARENT, header_bg
    sheets = browser.execute_script("return [...document.styleSheets].map(s => s.href).filter(Boolean)")
    assert any("/static/admin/css/base." in s for s in sheets), sheets
    screenshot(browser, artifacts, "admin-index")

    # 1. Secrets -> Add: a db secret, typed once.
    add_secret(browser, url, "browser-key", SECRET_VALUE)
    assert SECRET_VALUE not in browser.page_source
    assert_page_works(browser, "the secrets changelist")
    browser.find_element(By.LINK_TEXT, "browser-key").click()
    wait(browser).until(EC.url_contains("/change/"))
    assert_page_works(browser, "a secret's change form")
    assert browser.find_element(By.ID, "id_name").get_attribute("value") == "browser-key"
    assert SECRET_VALUE not in browser.page_source
    assert browser.find_element(By.ID, "id_value").get_attribute("value") == ""

    # 2. LLMs -> Add, using that secret and pointing at the fake provider; its change page stays open.
    add_llm(browser, url, "browser-llm", "browser-model", f"{upstream.url}/v1", "browser-key")

    # 3. Object permissions -> user "reg" -> "Can run inference on the LLM".
    grant_run(browser, "reg")

    # 4. API tokens -> Add for "reg"; the plaintext is on the page shown after saving.
    token = issue_token(browser, url, "reg", "from-the-browser")

    # Outside the browser, with that token: the catalogue and an inference.
    auth = {"Authorization": f"Bearer {token}"}
    listing = requests.get(f"{url}/api/v1/llms/", headers=auth, timeout=10)
    assert listing.status_code == 200, listing.text
    entries = listing.json() if isinstance(listing.json(), list) else listing.json()["results"]
    assert [(e["name"], e["has_api_key"]) for e in entries] == [("browser-llm", True)]
    assert SECRET_VALUE not in listing.text
    reply = requests.post(f"{url}/api/v1/llms/browser-llm/infer", headers=auth, timeout=10,
                          json={"messages": [{"role": "user", "content": "Hi"}]})
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == HELLO
    assert upstream.requests[-1].headers["Authorization"] == f"Bearer {SECRET_VALUE}"
    assert upstream.requests[-1].json()["model"] == "browser-model"
    assert SECRET_VALUE not in reply.text and SECRET_VALUE not in server.log()


def test_the_api_docs_render_from_this_servers_files_under_its_policy(server, browser, artifacts):
    """Swagger UI from the packaged static files (no CDN), its init script a file too: no inline script."""
    browser.get_log("browser")  # drop what an earlier test left in the console
    browser.get(f"{server.url}/api/docs/")
    try:
        wait(browser, 20).until(EC.presence_of_element_located((By.CSS_SELECTOR, ".opblock-summary-path")))
    except TimeoutException:
        pytest.fail(f"Swagger UI showed no operation; the console: {console_errors(browser)}")
    paths = [e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert {"/v1/chat/completions", "/api/v1/llms/{name}/infer", "/v1/models"} <= set(paths), paths
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert any("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle." in u for u in loaded), loaded
    assert [u for u in loaded if not u.startswith((f"{server.url}/", "data:"))] == []
    assert_page_works(browser, "the API docs")

    # "Try it out" on GET /v1/models: the request reaches this server and its answer is shown.
    browser.find_element(By.CSS_SELECTOR, ".opblock-get .opblock-summary-path[data-path='/v1/models']").click()
    operation = browser.find_element(By.CSS_SELECTOR, ".opblock-get.is-open")
    wait(browser).until(lambda d: operation.find_element(By.CSS_SELECTOR, ".try-out__btn")).click()
    operation.find_element(By.CSS_SELECTOR, ".execute").click()
    status = wait(browser).until(lambda d: operation.find_element(
        By.CSS_SELECTOR, ".live-responses-table tr.response .response-col_status"))
    assert status.text in ("200", "401"), status.text  # 401 unless the walkthrough logged this browser in
    assert [e for e in console_errors(browser) if "/v1/models - Failed to load resource" not in e] == []
    screenshot(browser, artifacts, "api-docs")

    # The policy is in force, and a refusal would show up in the console this test reads.
    ran = browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
                                 "document.head.append(s); return window.injected === 1")
    assert not ran
    refusals = console_errors(browser)
    assert any("inline script" in e and "Content Security Policy" in e for e in refusals), refusals


def test_calls_through_the_server_show_on_the_usage_dashboard(server, browser, upstream, artifacts):
    """Calls to the loopback provider through the real server (its audit writer, its rollups), then the
    dashboard in the browser: the Llm's row, its bars, the period switch, no console error."""
    url, name, password = server.url, "dash-admin", "pw-dash-e2e-1234"
    server.manage("createsuperuser", "--noinput", "--username", name, "--email", "dash@example.com",
                  env={"DJANGO_SUPERUSER_PASSWORD": password})
    for llm in ("dash-gpt", "dash-vllm"):
        server.manage("llm", "add", llm, "--provider", "openai" if llm == "dash-gpt" else "vllm", "--model", "m",
                      "--base-url", f"{upstream.url}/v1", "--price-input", "2.5", "--price-output", "10")
    auth = {"Authorization": f"Bearer {server.manage('token', 'issue', name).strip().splitlines()[-1]}"}
    chat = {"messages": [{"role": "user", "content": "Hi"}]}
    for n in range(6):
        body = {**chat, "model": "dash-gpt" if n % 3 else "dash-vllm", "stream": n % 2 == 0}
        reply = requests.post(f"{url}/v1/chat/completions", headers=auth, json=body, timeout=10)
        assert reply.status_code == 200, reply.text
    upstream.reply(json_reply({"error": {"message": "boom"}}, status=500))
    failed = requests.post(f"{url}/v1/chat/completions", headers=auth, json={**chat, "model": "dash-gpt"}, timeout=10)
    assert failed.status_code == 502

    def counted() -> dict:  # the writer inserts in the background, within ~0.1 s (the server is shared)
        data = requests.get(f"{url}/api/v1/usage/?group_by=llm", headers=auth, timeout=10).json()["data"]
        return {entry["llm"]: entry["calls"] for entry in data if entry["llm"].startswith("dash-")}

    deadline = time.monotonic() + 10
    while counted() != {"dash-gpt": 5, "dash-vllm": 2} and time.monotonic() < deadline:
        time.sleep(0.1)
    assert counted() == {"dash-gpt": 5, "dash-vllm": 2}

    log_in(browser, url, name, password)  # whoever an earlier test logged in, logged out
    browser.get_log("browser")
    browser.find_element(By.CSS_SELECTOR, "#usage-dashboard-module a[href='/admin/usage/']").click()
    wait(browser).until(EC.url_contains("/admin/usage/"))
    assert_page_works(browser, "the usage dashboard")
    rows = {row.find_element(By.TAG_NAME, "th").text: row.find_elements(By.TAG_NAME, "td")
            for row in browser.find_elements(By.CSS_SELECTOR, "#usage-llms tbody tr")}
    assert [cell.text for cell in rows["dash-gpt"][:2]] == ["5", "1 20.0%"]
    assert [cell.text for cell in rows["dash-vllm"][:2]] == ["2", "0 0.0%"]
    assert rows["dash-gpt"][5].text.endswith("ms")  # p50 latency, from the rollups' buckets
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart-calls-per-llm svg rect.usage-bar")
    titles = [bar.find_element(By.TAG_NAME, "title").get_attribute("textContent") for bar in bars]
    assert "dash-gpt, without error: 4 calls" in titles and "dash-gpt, errors: 1 calls" in titles
    assert bars[0].size["width"] > 0 and bars[0].size["height"] > 0  # drawn, not only in the markup
    filled = browser.execute_script("return getComputedStyle(arguments[0]).fill", bars[0])
    assert "usage-fill-0" in filled, filled  # the pattern of the page's fills
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [u for u in loaded if not u.startswith((f"{url}/", "data:"))] == []  # nothing from another host
    assert browser.execute_script("return document.scripts.length") == len(
        browser.find_elements(By.CSS_SELECTOR, "script[src]"))  # the admin's own files; no inline script

    browser.find_element(By.LINK_TEXT, "Today").click()
    wait(browser).until(EC.url_contains("period=day"))
    assert browser.find_element(By.CSS_SELECTOR, ".usage-periods a[aria-current=page]").text == "Today"
    assert_page_works(browser, "the usage dashboard, today")
    page_height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(page_height + 200, 4000))  # the whole page (the window's frame included)
    try:
        screenshot(browser, artifacts, "dashboard")
    finally:
        browser.set_window_size(1280, 900)
