"""The README's admin walkthrough in a real browser (headless Chromium) against the production server.

A new admin logs in, adds a Secret, an Llm using it, grants `run` on the Llm's "Object permissions"
page, issues an API token and copies it from the page; the token then works outside the browser.
Calls made through the server show on the usage dashboard. Every page on the way, and the API docs,
work under mcpd's Content-Security-Policy: the browser's console (captured through goog:loggingPrefs)
shows no refusal and no failed load. Screenshots go to MCPD_TEST_ARTIFACTS when it is set (a directory),
else to the test's tmp_path.
Needs Debian's chromium and chromium-driver (tests/run.sh installs them when missing).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.fakes.upstream import HELLO, FakeUpstream, json_reply

pytestmark = pytest.mark.xdist_group("e2e")  # one server for every e2e test (run.sh: --dist loadgroup)

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1280,900"]
ADMIN, ADMIN_PASSWORD = "admin", "pw-admin-e2e-1234"
SECRET_VALUE = "sk-browser-TYPED-IN-THE-ADMIN-9876543210"
TRANSPARENT = ("rgba(0, 0, 0, 0)", "transparent")


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium through chromedriver, with a throwaway profile."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(binary):
            pytest.fail(f"{binary} is missing: apt-get install chromium chromium-driver (tests/run.sh does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="mcpd-chromium-")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for console_errors()
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    except WebDriverException as exc:
        pytest.fail(f"Chromium could not be launched: {exc.msg}")
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def artifact(tmp_path: Path, name: str) -> Path:
    """Where a screenshot goes: MCPD_TEST_ARTIFACTS (kept after the run) or the test's tmp_path."""
    folder = Path(os.environ.get("MCPD_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def wait(driver: WebDriver, timeout: float = 10) -> WebDriverWait:
    return WebDriverWait(driver, timeout)


def console_errors(driver: WebDriver) -> list[str]:
    """The console's errors since the last call, once the page has loaded: a CSP refusal ("Refused to
    load the script …", "Refused to apply inline style …") or a failed load is one."""
    wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"
            and "/favicon.ico - " not in entry["message"]]  # Chromium's own guess; mcpd serves no icon


def assert_page_works(driver: WebDriver, page: str) -> None:
    assert console_errors(driver) == [], f"{page} ({driver.current_url})"


def submit(driver: WebDriver, selector: str = "input[name=_save]") -> None:
    """Click a submit button and wait for the next page."""
    button = driver.find_element(By.CSS_SELECTOR, selector)
    button.click()
    wait(driver).until(EC.staleness_of(button))


def assert_saved(driver: WebDriver) -> None:
    errors = driver.find_elements(By.CSS_SELECTOR, ".errornote, .errorlist")
    assert not errors, "the form was refused: " + " | ".join(e.text for e in errors)
    assert driver.find_elements(By.CSS_SELECTOR, ".messagelist .success"), driver.page_source[:3000]


def choose_autocomplete(driver: WebDriver, field_id: str, text: str) -> None:
    """Pick ``text`` in an admin autocomplete (select2) field: open it, type, click the match."""
    driver.find_element(By.CSS_SELECTOR, f"#{field_id} + .select2 .select2-selection").click()
    search = wait(driver).until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, ".select2-container--open .select2-search__field")))
    search.send_keys(text)

    def match(d):
        return next((o for o in d.find_elements(By.CSS_SELECTOR, ".select2-results__option")
                     if o.text.split(" (")[0] == text), None)

    wait(driver).until(match).click()
    assert text in driver.find_element(By.CSS_SELECTOR, f"#{field_id} + .select2").text


def open_add_page(driver: WebDriver, url: str, app_model: str) -> None:
    """From the admin index, follow the model's "Add" link, as a new admin would."""
    driver.get(f"{url}/admin/")
    driver.find_element(By.CSS_SELECTOR, f"a.addlink[href$='/admin/{app_model}/add/']").click()
    wait(driver).until(EC.url_contains(f"/admin/{app_model}/add/"))


def test_a_new_admin_sets_up_an_llm_and_a_token_in_the_browser(server, browser, upstream, tmp_path):
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
    screenshot = tmp_path / "admin-index.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"admin index screenshot: {screenshot}")

    # 1. Secrets -> Add: a db secret, typed once.
    open_add_page(browser, url, "secrets_app/secret")
    assert_page_works(browser, "the secret add form")
    browser.find_element(By.ID, "id_name").send_keys("browser-key")
    Select(browser.find_element(By.ID, "id_backend")).select_by_value("db")
    browser.find_element(By.ID, "id_value").send_keys(SECRET_VALUE)
    submit(browser)
    assert_saved(browser)
    assert SECRET_VALUE not in browser.page_source
    assert_page_works(browser, "the secrets changelist")
    browser.find_element(By.LINK_TEXT, "browser-key").click()
    wait(browser).until(EC.url_contains("/change/"))
    assert_page_works(browser, "a secret's change form")
    assert browser.find_element(By.ID, "id_name").get_attribute("value") == "browser-key"
    assert SECRET_VALUE not in browser.page_source
    assert browser.find_element(By.ID, "id_value").get_attribute("value") == ""

    # 2. LLMs -> Add, using that secret and pointing at the fake provider.
    open_add_page(browser, url, "llms/llm")
    browser.find_element(By.ID, "id_name").send_keys("browser-llm")
    Select(browser.find_element(By.ID, "id_provider")).select_by_value("openai")
    browser.find_element(By.ID, "id_model").send_keys("browser-model")
    browser.find_element(By.ID, "id_base_url").send_keys(f"{upstream.url}/v1")
    choose_autocomplete(browser, "id_api_key_secret", "browser-key")
    assert_page_works(browser, "the Llm add form, its autocomplete used")
    submit(browser, "input[name=_continue]")  # "Save and continue editing": stay on its change page
    assert_saved(browser)
    assert_page_works(browser, "an Llm's change form")

    # 3. Object permissions -> user "reg" -> "Can run inference on the LLM".
    link = browser.find_element(By.CSS_SELECTOR, ".object-tools a.permissionslink")
    assert link.text == "OBJECT PERMISSIONS"  # rendered upper-case by the admin's CSS
    link.click()
    wait(browser).until(EC.url_contains("/permissions/"))
    assert_page_works(browser, "the Llm's Object permissions page")
    browser.find_element(By.ID, "id_user").send_keys("reg")
    submit(browser, "input[name=submit_manage_user]")
    assert "/permissions/user-manage/" in browser.current_url
    assert_page_works(browser, "the Object permissions page of a user")
    available = Select(wait(browser).until(EC.presence_of_element_located((By.ID, "id_permissions_from"))))
    available.select_by_visible_text("Can run inference on the LLM")
    browser.find_element(By.ID, "id_permissions_add").click()
    chosen = [o.text for o in Select(browser.find_element(By.ID, "id_permissions_to")).options]
    assert chosen == ["Can run inference on the LLM"]
    submit(browser, "#submit")
    assert "Permissions saved." in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert_page_works(browser, "the Object permissions page, saved")

    # 4. API tokens -> Add for "reg"; the plaintext is on the page shown after saving.
    open_add_page(browser, url, "mcpd/apitoken")
    choose_autocomplete(browser, "id_user", "reg")
    browser.find_element(By.ID, "id_name").send_keys("from-the-browser")
    assert_page_works(browser, "the token add form")
    submit(browser)
    field = browser.find_element(By.ID, "issued-token")
    token = field.get_attribute("value")
    assert token.startswith("mcpd_"), browser.page_source[:3000]
    field.click()  # selects the whole token, ready to copy
    selected = browser.execute_script("const f = arguments[0]; return [f.selectionStart, f.selectionEnd]", field)
    assert selected == [0, len(token)]
    assert_page_works(browser, "the token issued page")

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


def test_the_api_docs_render_from_this_servers_files_under_its_policy(server, browser, tmp_path):
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
    screenshot = tmp_path / "api-docs.png"
    assert browser.save_screenshot(str(screenshot))
    print(f"API docs screenshot: {screenshot}")

    # The policy is in force, and a refusal would show up in the console this test reads.
    ran = browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
                                 "document.head.append(s); return window.injected === 1")
    assert not ran
    refusals = console_errors(browser)
    assert any("inline script" in e and "Content Security Policy" in e for e in refusals), refusals


def test_calls_through_the_server_show_on_the_usage_dashboard(server, browser, upstream, tmp_path):
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

    browser.delete_all_cookies()  # whoever an earlier test logged in
    browser.get_log("browser")
    browser.get(f"{url}/admin/")
    browser.find_element(By.ID, "id_username").send_keys(name)
    browser.find_element(By.ID, "id_password").send_keys(password)
    submit(browser, "input[type=submit]")
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
        screenshot = artifact(tmp_path, "dashboard.png")
        assert browser.save_screenshot(str(screenshot))
    finally:
        browser.set_window_size(1280, 900)
    print(f"usage dashboard screenshot: {screenshot}")
