"""The README's admin walkthrough in a real browser (headless Chromium) against the production server.

A new admin logs in, adds a Secret, an Llm using it, grants `run` on the Llm's "Object permissions"
page, issues an API token and copies it from the page; the token then works outside the browser.
Every page on the way, and the API docs, work under mcpd's Content-Security-Policy: the browser's
console (captured through goog:loggingPrefs) shows no refusal and no failed load.
The steps and the driver are in tests/e2e/browser.py; screenshots go to the `artifacts` directory.
"""

from __future__ import annotations

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
    screenshot,
    submit,
    wait,
)
from tests.fakes.upstream import HELLO

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
