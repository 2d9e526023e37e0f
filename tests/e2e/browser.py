"""Driving headless Chromium through the admin: the driver, waits, and the README walkthrough's steps.

Used by the browser tests (tests/e2e/test_admin_browser.py, test_playground_browser.py); their `browser`
and `artifacts` fixtures are in tests/e2e/conftest.py. Needs Debian's chromium and chromium-driver
(tests/run.sh installs them when missing).
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--window-size=1280,900"]


@contextmanager
def chromium() -> Iterator[WebDriver]:
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
    wait(driver).until(lambda d: _gone(button))


def _gone(element: WebElement) -> bool:
    """The element left the document: stale, or, asked while the next page replaces it, a node chromedriver
    no longer finds in it (which it reports as an "unknown error", not as staleness)."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if "does not belong to the document" in (exc.msg or ""):
            return True
        raise
    return False


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


def screenshot(driver: WebDriver, artifacts: Path, name: str, element: WebElement | None = None) -> Path:
    """Save what the browser shows, or all of one element of the page, as ARTIFACTS/NAME.png (the path
    printed, for a failing run's report)."""
    path = artifacts / f"{name}.png"
    if element is None:
        assert driver.save_screenshot(str(path))
    else:  # all of the element, beyond the window too (Chromium's DevTools protocol)
        x, y, width, height = driver.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height]", element)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": x, "y": y, "width": width, "height": height, "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path


# --- the README's admin walkthrough, a step each


def log_in(driver: WebDriver, url: str, username: str, password: str) -> None:
    """Log in on the admin's login page (from any page: it goes there), a fresh session."""
    driver.delete_all_cookies()
    driver.get(f"{url}/admin/login/")
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(password)
    submit(driver, "input[type=submit]")
    assert driver.find_elements(By.ID, "user-tools"), f"{username} was not logged in: {driver.page_source[:2000]}"


def add_secret(driver: WebDriver, url: str, name: str, value: str) -> None:
    """Secrets -> Add: a db secret, its value typed once."""
    open_add_page(driver, url, "secrets_app/secret")
    assert_page_works(driver, "the secret add form")
    driver.find_element(By.ID, "id_name").send_keys(name)
    Select(driver.find_element(By.ID, "id_backend")).select_by_value("db")
    driver.find_element(By.ID, "id_value").send_keys(value)
    submit(driver)
    assert_saved(driver)


def add_llm(driver: WebDriver, url: str, name: str, model: str, base_url: str, secret: str,
            prices: tuple[str, str] | None = None) -> None:
    """LLMs -> Add (an openai Llm using the secret; prices per million input and output tokens), then
    "Save and continue editing": the browser stays on its change page."""
    open_add_page(driver, url, "llms/llm")
    driver.find_element(By.ID, "id_name").send_keys(name)
    Select(driver.find_element(By.ID, "id_provider")).select_by_value("openai")
    driver.find_element(By.ID, "id_model").send_keys(model)
    driver.find_element(By.ID, "id_base_url").send_keys(base_url)
    choose_autocomplete(driver, "id_api_key_secret", secret)
    if prices is not None:
        driver.find_element(By.ID, "id_price_input").send_keys(prices[0])
        driver.find_element(By.ID, "id_price_output").send_keys(prices[1])
    assert_page_works(driver, "the Llm add form, its autocomplete used")
    submit(driver, "input[name=_continue]")
    assert_saved(driver)
    assert_page_works(driver, "an Llm's change form")


def grant_run(driver: WebDriver, username: str) -> None:
    """From an Llm's change page: Object permissions -> the user -> "Can run inference on the LLM"."""
    link = driver.find_element(By.CSS_SELECTOR, ".object-tools a.permissionslink")
    assert link.text == "OBJECT PERMISSIONS"  # rendered upper-case by the admin's CSS
    link.click()
    wait(driver).until(EC.url_contains("/permissions/"))
    assert_page_works(driver, "the Llm's Object permissions page")
    driver.find_element(By.ID, "id_user").send_keys(username)
    submit(driver, "input[name=submit_manage_user]")
    assert "/permissions/user-manage/" in driver.current_url
    assert_page_works(driver, "the Object permissions page of a user")
    available = Select(wait(driver).until(EC.presence_of_element_located((By.ID, "id_permissions_from"))))
    available.select_by_visible_text("Can run inference on the LLM")
    driver.find_element(By.ID, "id_permissions_add").click()
    chosen = [o.text for o in Select(driver.find_element(By.ID, "id_permissions_to")).options]
    assert chosen == ["Can run inference on the LLM"]
    submit(driver, "#submit")
    assert "Permissions saved." in driver.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert_page_works(driver, "the Object permissions page, saved")


def issue_token(driver: WebDriver, url: str, username: str, name: str) -> str:
    """API tokens -> Add for the user; the plaintext, from the page shown once after saving."""
    open_add_page(driver, url, "mcpd/apitoken")
    choose_autocomplete(driver, "id_user", username)
    driver.find_element(By.ID, "id_name").send_keys(name)
    assert_page_works(driver, "the token add form")
    submit(driver)
    field = driver.find_element(By.ID, "issued-token")
    token = field.get_attribute("value")
    assert token.startswith("mcpd_"), driver.page_source[:3000]
    field.click()  # selects the whole token, ready to copy
    selected = driver.execute_script("const f = arguments[0]; return [f.selectionStart, f.selectionEnd]", field)
    assert selected == [0, len(token)]
    assert_page_works(driver, "the token issued page")
    return token
