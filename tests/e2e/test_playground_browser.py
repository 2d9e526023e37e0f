"""The playground and an Llm's admin page in a real browser (headless Chromium) against the production server.

An admin sets up a priced Llm on the loopback fake provider and grants run to a staff user through the
admin (the walkthrough's steps, tests/e2e/browser.py). That user chats on /playground/: the answer grows
on the page while the fake is still sending it, then its usage line appears; the conversation is kept
for the next message; errors are shown as the API sent them. The admin then finds the call among the
Llm's recent calls and presses Test, and the usage dashboard shows those calls. Screenshots go to the
`artifacts` directory.
"""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
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
from tests.fakes.upstream import HELLO, json_reply, openai_stream_frames, sse_file_frames, sse_reply

pytestmark = pytest.mark.xdist_group("e2e")  # one server for every e2e test (run.sh: --dist loadgroup)

OWNER, OWNER_PASSWORD = "owner", "pw-owner-e2e-1234"
PAT, PAT_PASSWORD = "pat", "pw-pat-e2e-1234"
PIECES = [f"word{n} " for n in range(12)]
INTERVAL = 0.4  # seconds between the fake's chunks: the answer takes ~5 s to arrive
USAGE = {"prompt_tokens": 12, "completion_tokens": 40, "total_tokens": 52}  # 2.5 and 10 per M: 0.00043


def answers(driver: WebDriver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#pg-conversation .pg-assistant")


def last_answer_text(driver: WebDriver) -> str:
    return driver.execute_script(
        "const a = document.querySelectorAll('#pg-conversation .pg-assistant .pg-answer');"
        "return a.length ? a[a.length - 1].textContent : null")


def send(driver: WebDriver, *keys: str) -> None:
    """Type into the message box and press Enter, which sends."""
    box = driver.find_element(By.ID, "pg-prompt")
    box.send_keys(*keys)
    box.send_keys(Keys.ENTER)


def wait_answered(driver: WebDriver, count: int, timeout: float = 20) -> None:
    """Until the count-th answer has its usage line and the Send button is back."""
    wait(driver, timeout).until(lambda d: len(answers(d)) >= count
                                and answers(d)[count - 1].find_element(By.CSS_SELECTOR, ".pg-usage").text != "…"
                                and d.find_element(By.ID, "pg-send").is_enabled())


def test_a_user_chats_on_the_playground_and_the_admin_sees_and_tests_the_llm(server, browser, upstream, artifacts):
    url = server.url
    server.manage("createsuperuser", "--noinput", "--username", OWNER, "--email", "owner@example.com",
                  env={"DJANGO_SUPERUSER_PASSWORD": OWNER_PASSWORD})
    server.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                 f"User.objects.create_user('{PAT}', password='{PAT_PASSWORD}', is_staff=True)")

    # The admin: a secret, a priced Llm on the fake provider, run for pat, a token (the walkthrough's steps).
    log_in(browser, url, OWNER, OWNER_PASSWORD)
    add_secret(browser, url, "paced-key", "sk-paced-TYPED-IN-THE-ADMIN-1234567890")
    add_llm(browser, url, "paced-llm", "paced-model", f"{upstream.url}/v1", "paced-key", prices=("2.5", "10"))
    llm_page = browser.current_url
    grant_run(browser, PAT)
    assert issue_token(browser, url, PAT, "pat-laptop").startswith("mcpd_")

    # pat, on the playground: the answer grows while the fake is still sending it.
    log_in(browser, url, PAT, PAT_PASSWORD)
    browser.get(f"{url}/playground/")
    assert_page_works(browser, "the playground")
    assert [o.text for o in browser.find_elements(By.CSS_SELECTOR, "#pg-llm option")] == ["paced-llm"]
    assert "2.5 in / 10 out USD per million tokens" in browser.find_element(By.ID, "pg-about").text
    assert browser.switch_to.active_element == browser.find_element(By.ID, "pg-prompt")
    upstream.reset()
    upstream.reply(sse_reply(openai_stream_frames(PIECES, include_usage=True, usage=USAGE), interval=INTERVAL))
    send(browser, "Count some words")
    wait(browser).until(lambda d: (last_answer_text(d) or "").startswith("word0"))
    early = last_answer_text(browser)
    time.sleep(3 * INTERVAL)
    later = last_answer_text(browser)
    assert not upstream.stream_completed.is_set(), "the fake finished before the second look"
    assert later.startswith(early) and len(later) > len(early), (early, later)
    assert answers(browser)[0].find_element(By.CSS_SELECTOR, ".pg-usage").text == "…"  # not yet
    assert not browser.find_element(By.ID, "pg-send").is_enabled()
    screenshot(browser, artifacts, "playground-streaming")
    wait_answered(browser, 1)
    assert last_answer_text(browser) == "".join(PIECES)
    usage = answers(browser)[0].find_element(By.CSS_SELECTOR, ".pg-usage").text
    assert usage.startswith("12 prompt + 40 completion tokens · 0.00043 USD · first token "), usage
    assert " · total " in usage
    sent = upstream.requests[-1].json()
    assert (sent["stream"], sent["stream_options"], sent["model"]) == (True, {"include_usage": True}, "paced-model")
    assert browser.switch_to.active_element == browser.find_element(By.ID, "pg-prompt")

    # The next message carries the conversation; Shift+Enter is a new line in it.
    send(browser, "line one", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "line two")
    wait_answered(browser, 2)
    assert last_answer_text(browser) == HELLO  # the fake's own streamed answer
    messages = upstream.requests[-1].json()["messages"]
    assert messages == [{"role": "user", "content": "Count some words"},
                        {"role": "assistant", "content": "".join(PIECES)},
                        {"role": "user", "content": "line one\nline two"}]

    # Thinking (reasoning_content deltas) apart from the answer; tool calls as they were asked for.
    upstream.reply(sse_reply(sse_file_frames("chat_reasoning.sse")))
    send(browser, "What is 27 * 453?")
    wait_answered(browser, 3)
    thinking = answers(browser)[2].find_element(By.CSS_SELECTOR, "details.pg-reasoning")
    assert thinking.find_element(By.TAG_NAME, "summary").text == "Thinking"
    assert thinking.find_element(By.CSS_SELECTOR, ".pg-text").text.startswith("27 * 453: 453 = 400 + 50 + 3")
    assert last_answer_text(browser) == "27 * 453 = 12,231"
    call = {"index": 0, "id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "<b>Paris</b>"}'}}
    upstream.reply(sse_reply(openai_stream_frames([], tool_calls=[call], finish_reason="tool_calls")))
    send(browser, "Weather in Paris?")
    wait_answered(browser, 4)
    fourth = answers(browser)[3]
    assert fourth.find_element(By.CSS_SELECTOR, ".pg-tool").text == 'Tool call get_weather({"city": "<b>Paris</b>"})'
    assert "Finish reason: tool_calls" in fourth.text
    assert len(upstream.requests[-1].json()["messages"]) == 7  # the conversation so far, and this prompt

    # Errors as the API sent them: an HTTP error, and one after the stream began.
    upstream.reply(json_reply({"error": {"message": "This model's maximum context length is 8 tokens."}},
                              status=400))
    send(browser, "Too long")
    wait_answered(browser, 5)
    alert = answers(browser)[4].find_element(By.CSS_SELECTOR, ".pg-error[role=alert]").text
    assert alert == "400 invalid_request_error: This model's maximum context length is 8 tokens."
    assert browser.find_element(By.ID, "pg-prompt").get_attribute("value") == "Too long"  # back, to resend
    browser.find_element(By.ID, "pg-prompt").clear()
    upstream.reply(sse_reply(openai_stream_frames(["Half an ans", "wer"]), drop_after=2))
    send(browser, "Break off")
    wait_answered(browser, 6)
    alert = answers(browser)[5].find_element(By.CSS_SELECTOR, ".pg-error[role=alert]").text
    assert alert.startswith("Error during the answer: upstream_error (upstream_stream_incomplete): "), alert
    assert answers(browser)[5].find_element(By.CSS_SELECTOR, ".pg-answer").text == "Half an ans"
    browser.find_element(By.ID, "pg-prompt").clear()

    # Escape stops an answer: mcpd sees the browser go and lets go of the provider.
    upstream.reply(sse_reply(openai_stream_frames(PIECES), interval=INTERVAL))
    send(browser, "Go on and on")
    wait(browser).until(lambda d: (last_answer_text(d) or "").startswith("word0"))
    browser.find_element(By.ID, "pg-prompt").send_keys(Keys.ESCAPE)
    wait_answered(browser, 7)
    assert answers(browser)[6].find_element(By.CSS_SELECTOR, ".pg-error").text == "Stopped."
    assert upstream.stream_aborted.wait(5), "mcpd kept reading the provider's stream"
    browser.find_element(By.ID, "pg-prompt").clear()
    screenshot(browser, artifacts, "playground-conversation", browser.find_element(By.ID, "content"))
    # Chromium logs the 400 itself; nothing else (a policy refusal, a script error) went to the console.
    assert [e for e in console_errors(browser) if "/infer - Failed to load resource: the server responded with "
            "a status of 400" not in e] == []

    # The admin: the call among the Llm's recent calls, then Test.
    log_in(browser, url, OWNER, OWNER_PASSWORD)
    browser.get(llm_page)
    assert_page_works(browser, "an Llm's page with its overview")
    calls = browser.find_elements(By.CSS_SELECTOR, "#llm-calls tr.llm-call")
    cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in calls]
    assert [(c[1], c[2], c[3], c[4]) for c in cells][-1] == ("pat", "chat_completions, stream", "200", "ok"), cells
    assert cells[-1][7] == "12 + 40" and cells[-1][8] == "0.00043", cells[-1]
    assert [(c[3], c[4]) for c in cells] == [("200", "client_disconnected"), ("200", "error"), ("400", "error"),
                                             *[("200", "ok")] * 4]
    upstream.reset()
    browser.find_element(By.ID, "llm-test-prompt").clear()
    browser.find_element(By.ID, "llm-test-prompt").send_keys("Say hello to the owner")
    submit(browser, "#llm-test-button")
    answer = wait(browser).until(EC.visibility_of_element_located((By.ID, "llm-test-answer")))
    assert answer.text == HELLO
    assert "Answered in " in browser.find_element(By.ID, "llm-test-result").text
    assert upstream.requests[-1].json()["messages"] == [{"role": "user", "content": "Say hello to the owner"}]
    states = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#llm-deployments td.llm-state")]
    assert states == ["ready"]
    holders = browser.find_elements(By.CSS_SELECTOR, "#llm-access tr.llm-holder td:first-child")
    assert [holder.text for holder in holders] == ["user pat"]
    screenshot(browser, artifacts, "llm-page", browser.find_element(By.ID, "llm-overview"))
    assert_page_works(browser, "an Llm's page after Test")

    # And the usage dashboard shows pat's calls to the Llm (the rollups of the real server's writer).
    browser.get(f"{url}/admin/")
    browser.find_element(By.CSS_SELECTOR, "#usage-dashboard-module a[href='/admin/usage/']").click()
    wait(browser).until(EC.url_contains("/admin/usage/"))
    assert_page_works(browser, "the usage dashboard")

    def calls_shown(driver: WebDriver) -> str:  # the writer adds the Test's row within ~0.1 s: reload till then
        rows = {row.find_element(By.TAG_NAME, "th").text: [td.text for td in row.find_elements(By.TAG_NAME, "td")]
                for row in driver.find_elements(By.CSS_SELECTOR, "#usage-llms tbody tr")}
        if rows.get("paced-llm", [""])[0] != str(len(cells) + 1):
            driver.refresh()
            return ""
        return rows["paced-llm"][0]

    assert wait(browser).until(calls_shown) == str(len(cells) + 1)  # the playground's calls and the Test
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart-calls-per-llm svg rect.usage-bar")
    assert any("paced-llm" in bar.find_element(By.TAG_NAME, "title").get_attribute("textContent") for bar in bars)
