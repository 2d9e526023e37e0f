"""The real coding agents against `make run`'s server, offline, on loopback, configured as the README
says: Claude Code (the npm package's native binary) with ANTHROPIC_BASE_URL and ANTHROPIC_AUTH_TOKEN;
Codex with a `[model_providers.mcpd]` block in its config.toml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Server
from tests.fakes.upstream import HELLO, FakeUpstream, openai_stream_frames, responses_stream_frames, sse_reply

pytestmark = pytest.mark.xdist_group("e2e")  # the shared server

AGENTS = Path(os.environ.get("MCPD_TEST_AGENTS_DIR", Path.home() / ".cache" / "mcpd-test-agents"))
CLAUDE = AGENTS / "node_modules" / ".bin" / "claude"
CODEX = AGENTS / "node_modules" / ".bin" / "codex"
SET_UP = """
from django.contrib.auth.models import User
from llms.models import Llm
from llms.permissions import grant_run
from mcpd.models import ApiToken
from secrets_app.models import Secret
secret, _ = Secret.objects.get_or_create(name="agents-key", backend="db")
secret.set_value("sk-ant-agents-FAKE-0123456789"); secret.save()
user, _ = User.objects.get_or_create(username="coder")
for name, provider, model, path in [("claude-sonnet-4-6", "anthropic", "claude-sonnet-4-5", "/v1"),
                                    ("claude-gpt", "openai", "gpt-4o-mini", "/v1"),
                                    ("codex-gpt", "openai", "gpt-5.1-codex", "/v1"),
                                    ("codex-qwen", "vllm", "qwen3-coder", "/v1"),
                                    ("codex-claude", "anthropic", "claude-sonnet-4-5", "/v1")]:
    llm, _ = Llm.objects.update_or_create(name=name, defaults=dict(provider=provider, model=model,
                                          base_url={base!r} + path, api_key_secret=secret))
    grant_run(user, llm)
print(ApiToken.objects.issue(user)[1])
"""


@pytest.fixture(scope="module")
def agents_fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def coder_token(server: Server, agents_fake: FakeUpstream) -> str:
    return server.manage("shell", "-c", SET_UP.format(base=agents_fake.url)).strip().splitlines()[-1]


def claude(server: Server, token: str, tmp_path: Path, *args: str) -> dict:
    """Run Claude Code in print mode against mcpd; its JSON result."""
    assert CLAUDE.exists(), f"Claude Code is not installed in {AGENTS} (tests/agents.sh installs it)"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ANTHROPIC_BASE_URL": server.url,
           "ANTHROPIC_AUTH_TOKEN": token, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
           "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1"}
    done = subprocess.run([str(CLAUDE), "-p", *args, "--output-format", "json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def test_claude_code_through_mcpd_to_an_anthropic_llm(server, coder_token, agents_fake, tmp_path):
    agents_fake.reset()
    result = claude(server, coder_token, tmp_path, "Say hello", "--model", "claude-sonnet-4-6")
    assert result["is_error"] is False and result["result"] == HELLO
    [sent] = [r for r in agents_fake.requests if r.path == "/v1/messages"]
    assert "claude-code" in sent.headers["anthropic-beta"]  # its betas went upstream as it sent them
    body = sent.json()
    assert body["model"] == "claude-sonnet-4-5" and body["stream"] is True and body["tools"]
    assert sent.headers["x-api-key"] == "sk-ant-agents-FAKE-0123456789"


def test_claude_code_through_mcpd_to_an_openai_llm(server, coder_token, agents_fake, tmp_path):
    agents_fake.reset()
    result = claude(server, coder_token, tmp_path, "Say hello", "--model", "claude-gpt")
    assert result["is_error"] is False and result["result"] == HELLO
    sent = [r for r in agents_fake.requests if r.path == "/v1/chat/completions"]
    assert sent and sent[0].json()["model"] == "gpt-4o-mini" and sent[0].json()["stream"] is True
    assert sent[0].headers["Authorization"] == "Bearer sk-ant-agents-FAKE-0123456789"


def test_claude_code_runs_a_tool_through_a_translated_llm(server, coder_token, agents_fake, tmp_path):
    """The model (an openai Llm) asks for Claude Code's Read tool; the tool's result comes back as a chat
    `tool` message on the next call, and the final answer reaches Claude Code."""
    agents_fake.reset()
    notes = tmp_path / "notes.txt"
    notes.write_text("the secret word is marmalade\n")
    call = {"index": 0, "id": "call_read_1", "type": "function",
            "function": {"name": "Read", "arguments": json.dumps({"file_path": str(notes)})}}
    agents_fake.reply(sse_reply(openai_stream_frames([], finish_reason="tool_calls", include_usage=True,
                                                     tool_calls=[call])))
    result = claude(server, coder_token, tmp_path, "What is the secret word in notes.txt?", "--model", "claude-gpt",
                    "--allowedTools", "Read")
    assert result["is_error"] is False and result["result"] == HELLO
    calls = [r.json() for r in agents_fake.requests if r.path == "/v1/chat/completions"]
    assert len(calls) >= 2
    answered = [m for m in calls[-1]["messages"] if m["role"] == "tool"]
    assert answered and answered[0]["tool_call_id"] == "call_read_1" and "marmalade" in str(answered[0]["content"])


# The README's block: Codex speaks the Responses API to mcpd; web_search is OpenAI's hosted tool, which
# only openai Llms (the passthrough) can run.
CODEX_CONFIG = """
model = "{model}"
model_provider = "mcpd"
web_search = "disabled"

[model_providers.mcpd]
name = "mcpd"
base_url = "{url}/v1"
env_key = "MCPD_API_KEY"
wire_api = "responses"
"""


def codex(server: Server, token: str, tmp_path: Path, model: str, prompt: str) -> str:
    """Run `codex exec` against mcpd; its final message."""
    assert CODEX.exists(), f"Codex is not installed in {AGENTS} (tests/agents.sh installs it)"
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    (home / "config.toml").write_text(CODEX_CONFIG.format(model=model, url=server.url))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "CODEX_HOME": str(home), "MCPD_API_KEY": token}
    done = subprocess.run([str(CODEX), "exec", "--skip-git-repo-check", "--sandbox", "danger-full-access",
                           "--output-last-message", str(tmp_path / "last.txt"), prompt],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return (tmp_path / "last.txt").read_text().strip()


def test_codex_through_mcpd_to_an_openai_llm(server, coder_token, agents_fake, tmp_path):
    agents_fake.reset()
    assert codex(server, coder_token, tmp_path, "codex-gpt", "Say hello") == HELLO
    [sent] = [r for r in agents_fake.requests if r.path == "/v1/responses"]
    body = sent.json()
    assert body["model"] == "gpt-5.1-codex" and body["stream"] is True and body["store"] is False
    assert body["include"] == ["reasoning.encrypted_content"] and body["tools"]
    assert sent.headers["Authorization"] == "Bearer sk-ant-agents-FAKE-0123456789"


@pytest.mark.parametrize(("model", "path"), [("codex-qwen", "/v1/chat/completions"),
                                             ("codex-claude", "/v1/messages")])
def test_codex_through_mcpd_to_a_translated_llm(server, coder_token, agents_fake, tmp_path, model, path):
    agents_fake.reset()
    assert codex(server, coder_token, tmp_path, model, "Say hello") == HELLO
    [sent] = [r for r in agents_fake.requests if r.path == path]
    assert sent.json()["stream"] is True


def test_codex_runs_a_command_through_a_translated_llm(server, coder_token, agents_fake, tmp_path):
    """The model (a vllm Llm) asks for Codex's exec_command tool; the command's output comes back as a
    chat `tool` message on the next call, and the final answer reaches Codex."""
    agents_fake.reset()
    (tmp_path / "notes.txt").write_text("the secret word is marmalade\n")
    call = {"index": 0, "id": "call_exec_1", "type": "function",
            "function": {"name": "exec_command", "arguments": json.dumps({"cmd": "cat notes.txt"})}}
    agents_fake.reply(sse_reply(openai_stream_frames([], finish_reason="tool_calls", include_usage=True,
                                                     tool_calls=[call])))
    assert codex(server, coder_token, tmp_path, "codex-qwen", "What is the secret word in notes.txt?") == HELLO
    calls = [r.json() for r in agents_fake.requests if r.path == "/v1/chat/completions"]
    assert len(calls) == 2
    answered = [m for m in calls[-1]["messages"] if m["role"] == "tool"]
    assert answered and answered[0]["tool_call_id"] == "call_exec_1" and "marmalade" in str(answered[0]["content"])


def test_codex_replays_reasoning_to_an_openai_llm(server, coder_token, agents_fake, tmp_path):
    """Encrypted reasoning of one call is sent back verbatim with the command's output on the next."""
    agents_fake.reset()
    (tmp_path / "notes.txt").write_text("marmalade\n")
    agents_fake.reply(sse_reply(responses_stream_frames(
        [], reasoning="**Reading the file**",
        function_calls=[{"name": "exec_command", "arguments": json.dumps({"cmd": "cat notes.txt"}),
                         "call_id": "call_exec_2"}])))
    assert codex(server, coder_token, tmp_path, "codex-gpt", "Read notes.txt") == HELLO
    calls = [r.json() for r in agents_fake.requests if r.path == "/v1/responses"]
    assert len(calls) == 2
    items = calls[-1]["input"]
    [reasoning] = [item for item in items if item.get("type") == "reasoning"]
    assert reasoning["encrypted_content"] == "gAAAAAfake-final"
    [output] = [item for item in items if item.get("type") == "function_call_output"]
    assert output["call_id"] == "call_exec_2" and "marmalade" in str(output["output"])


@pytest.mark.parametrize(("model", "path"), [("codex-gpt", "/v1/responses"), ("codex-qwen", "/v1/chat/completions"),
                                             ("codex-claude", "/v1/messages")])
def test_the_vercel_ai_sdks_openai_provider_through_mcpd(server, coder_token, agents_fake, model, path):
    """createOpenAI({baseURL})(name) calls /v1/responses (since AI SDK 5): generateText and streamText."""
    agents_fake.reset()
    script = shutil.copy(Path(__file__).parents[1] / "clients" / "vercel_ai.mjs", AGENTS / "vercel_ai.mjs")
    done = subprocess.run(["node", script, f"{server.url}/v1", coder_token, model], capture_output=True, text=True,
                          timeout=60, cwd=AGENTS)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["text"] == result["streamed"] == HELLO
    assert result["finishReason"] == result["streamedFinishReason"] == "stop"
    assert result["usage"]["inputTokens"] > 0 and result["streamedUsage"]["outputTokens"] > 0
    assert len([r for r in agents_fake.requests if r.path == path]) == 2
