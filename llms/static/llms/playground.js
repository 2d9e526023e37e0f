"use strict";
// The playground (/playground/): a conversation with one LLM, kept in this page, each answer streamed
// from the real inference route, POST /api/v1/llms/{name}/infer, as the browser's session (its CSRF token
// in X-CSRFToken). A file, not an inline script: the Content-Security-Policy (mcpd/middleware.py) runs
// scripts from this server's files only. Model output is only ever set as text (Text nodes and
// textContent), never parsed as HTML.
(() => {
  const form = document.getElementById("pg-form");
  if (!form) {
    return; // no LLM to run: the page says so
  }
  const $ = (id) => document.getElementById(id);
  const select = $("pg-llm");
  const prompt = $("pg-prompt");
  const system = $("pg-system");
  const conversation = $("pg-conversation");
  const send = $("pg-send");
  const stop = $("pg-stop");
  const status = $("pg-status");
  const about = $("pg-about");
  const csrf = form.elements.namedItem("csrfmiddlewaretoken").value;
  const currency = form.dataset.currency;
  const history = []; // the messages of the exchanges that were answered, as they are sent again
  let running = null; // the AbortController of the answer in progress

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function priceOf(option) {
    const number = (name) => (option.dataset[name] === "" ? null : Number(option.dataset[name]));
    return { input: number("priceInput"), output: number("priceOutput"), cacheRead: number("priceCacheRead") };
  }

  function describe() {
    const option = select.selectedOptions[0];
    const price = priceOf(option);
    const priced = price.input !== null && price.output !== null
      ? `${price.input} in / ${price.output} out ${currency} per million tokens`
      : "no price set";
    about.textContent = `${option.dataset.provider} ${option.dataset.model}, ${priced}`;
  }

  // Prices are per million tokens; prompt tokens read from the provider's cache cost the cache-read price.
  function costOf(usage, price) {
    if (!usage || price.input === null || price.output === null) return null;
    const prompt = usage.prompt_tokens, completion = usage.completion_tokens;
    if (typeof prompt !== "number" || typeof completion !== "number") return null;
    const cached = (usage.prompt_tokens_details && usage.prompt_tokens_details.cached_tokens) || 0;
    const cacheRead = price.cacheRead === null ? price.input : price.cacheRead;
    return ((prompt - cached) * price.input + cached * cacheRead + completion * price.output) / 1e6;
  }

  function money(amount) { // to the audit column's 10 places, without its trailing zeros: 0.0000825, 1.50
    return amount.toFixed(10).replace(/(\.\d\d\d*?)0+$/, "$1");
  }

  function duration(ms) {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
  }

  // Server-sent events from a fetch body: {event, data} for each event that has data lines.
  async function* events(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      // Lines may end in \r\n, \n or \r; a \r at the very end may be the first half of a \r\n.
      const held = buffer.endsWith("\r") ? "\r" : "";
      buffer = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const parsed = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (parsed) yield parsed;
      }
      buffer += held;
    }
  }

  function parseEvent(block) {
    const data = [];
    let name = "";
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue; // a comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") name = value;
    }
    return data.length ? { event: name, data: data.join("\n") } : null;
  }

  function atBottom() {
    return window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 48;
  }

  function addTurn(who, className) {
    const item = element("li", `pg-turn ${className}`);
    item.append(element("p", "pg-who", who));
    conversation.append(item);
    return item;
  }

  // One answer as it arrives: thinking, text, tool calls, an error, then its usage line.
  class Answer {
    constructor(item) {
      this.item = item;
      this.reasoning = null;
      this.answer = item.appendChild(element("div", "pg-text pg-answer"));
      this.text = this.answer.appendChild(document.createTextNode(""));
      this.tools = new Map();
      this.usage = item.appendChild(element("p", "pg-usage", "…"));
    }

    show(update) {
      const stick = atBottom();
      update();
      if (stick) this.item.scrollIntoView({ block: "end" });
    }

    addText(piece) {
      this.show(() => this.text.appendData(piece));
    }

    addReasoning(piece) {
      this.show(() => {
        if (!this.reasoning) {
          const box = element("details", "pg-reasoning");
          box.open = true;
          box.append(element("summary", null, "Thinking"));
          this.reasoning = box.appendChild(element("div", "pg-text")).appendChild(document.createTextNode(""));
          this.item.insertBefore(box, this.answer);
        }
        this.reasoning.appendData(piece);
      });
    }

    addToolCall(delta) {
      this.show(() => {
        const index = typeof delta.index === "number" ? delta.index : this.tools.size;
        let call = this.tools.get(index);
        if (!call) {
          call = { name: "", args: "", node: element("pre", "pg-tool") };
          this.tools.set(index, call);
          this.item.insertBefore(call.node, this.usage);
        }
        const fn = delta.function || {};
        if (fn.name) call.name += fn.name;
        if (fn.arguments) call.args += fn.arguments;
        call.node.textContent = `Tool call ${call.name || "?"}(${call.args})`;
      });
    }

    note(text, className) {
      this.item.insertBefore(element("p", className, text), this.usage);
    }

    fail(error) {
      const alert = element("p", "pg-error", error);
      alert.setAttribute("role", "alert");
      this.item.insertBefore(alert, this.usage);
    }

    get value() {
      return this.text.data;
    }
  }

  function errorText(error, httpStatus) {
    const kind = [httpStatus, error.type].filter(Boolean).join(" ");
    const code = error.code ? ` (${error.code})` : "";
    return `${kind}${code}: ${error.message}`;
  }

  async function httpError(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (ignored) {
      // not JSON: the status says what there is to say
    }
    const error = body && typeof body.error === "object" && body.error ? body.error : null;
    return errorText(error || { type: "http_error", message: response.statusText || "no message" }, response.status);
  }

  function usageLine(usage, price, ttft, total) {
    const parts = [];
    if (usage && typeof usage.prompt_tokens === "number") {
      parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
    } else {
      parts.push("tokens not reported");
    }
    const cost = costOf(usage, price);
    parts.push(cost === null ? "cost unknown" : `${money(cost)} ${currency}`);
    if (ttft !== null) parts.push(`first token ${duration(ttft)}`);
    parts.push(`total ${duration(total)}`);
    return parts.join(" · ");
  }

  function busy(on) {
    send.disabled = on;
    stop.disabled = !on;
    form.setAttribute("aria-busy", on ? "true" : "false");
  }

  async function ask(text) {
    const option = select.selectedOptions[0];
    const name = option.value;
    const price = priceOf(option);
    const user = addTurn("You", "pg-user");
    user.append(element("div", "pg-text", text));
    const answer = new Answer(addTurn(name, "pg-assistant"));
    const messages = [...(system.value.trim() ? [{ role: "system", content: system.value }] : []), ...history,
      { role: "user", content: text }];
    const controller = new AbortController();
    running = controller;
    busy(true);
    status.textContent = `Asking ${name}…`;
    const started = performance.now();
    let firstAt = null, usage = null, done = false, failure = null, finish = null;
    const arrived = () => { if (firstAt === null) firstAt = performance.now(); };
    try {
      const response = await fetch(`${form.dataset.llmsUrl}${encodeURIComponent(name)}/infer`, {
        method: "POST",
        credentials: "same-origin",
        signal: controller.signal,
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", "X-CSRFToken": csrf },
        body: JSON.stringify({ messages, stream: true, stream_options: { include_usage: true } }),
      });
      if (!response.ok) {
        failure = await httpError(response);
      } else if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        failure = `The answer is not an event stream (${response.headers.get("Content-Type")}).`;
      } else {
        for await (const { data } of events(response.body)) {
          if (done || failure) continue; // nothing is expected after [DONE] or an error
          if (data === "[DONE]") {
            done = true;
            continue;
          }
          let chunk;
          try {
            chunk = JSON.parse(data);
          } catch (ignored) {
            failure = `An event that is not JSON: ${data.slice(0, 200)}`;
            continue;
          }
          if (chunk.error) { // after the stream began: one error event, and no [DONE]
            failure = `Error during the answer: ${errorText(chunk.error)}`;
            continue;
          }
          if (chunk.usage) usage = chunk.usage;
          for (const choice of chunk.choices || []) {
            const delta = choice.delta || {};
            const reasoning = delta.reasoning_content || delta.reasoning;
            if (typeof reasoning === "string" && reasoning) {
              arrived();
              answer.addReasoning(reasoning);
            }
            if (typeof delta.content === "string" && delta.content) {
              arrived();
              answer.addText(delta.content);
            }
            if (typeof delta.refusal === "string" && delta.refusal) {
              arrived();
              answer.note(`Refusal: ${delta.refusal}`, "pg-error");
            }
            for (const call of Array.isArray(delta.tool_calls) ? delta.tool_calls : []) {
              arrived();
              answer.addToolCall(call);
            }
            if (choice.finish_reason) finish = choice.finish_reason;
          }
        }
        if (!done && !failure) failure = "The stream ended before it was complete (no [DONE]).";
      }
    } catch (error) {
      failure = error.name === "AbortError" ? "Stopped." : `The request failed: ${error.message || error}`;
    }
    const total = performance.now() - started;
    if (finish && finish !== "stop") answer.note(`Finish reason: ${finish}`, "pg-quiet");
    if (failure) answer.fail(failure);
    answer.usage.textContent = usageLine(usage, price, firstAt === null ? null : firstAt - started, total);
    if (!failure && answer.value) {
      history.push({ role: "user", content: text }, { role: "assistant", content: answer.value });
    } else {
      // Not part of the conversation sent next time: a failed exchange (its prompt comes back, to be sent
      // again), or one with no text, such as tool calls alone (the playground runs no tools).
      user.classList.add("pg-unanswered");
      if (failure && !prompt.value) prompt.value = text;
      if (!failure) answer.note("Not kept in the conversation: the answer has no text.", "pg-quiet");
    }
    running = null;
    busy(false);
    status.textContent = failure ? `Not answered: ${failure}` : `Answered in ${duration(total)}.`;
    prompt.focus();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = prompt.value;
    if (running || !text.trim()) return;
    prompt.value = "";
    ask(text);
  });

  prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey
        && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    } else if (event.key === "Escape" && running) {
      event.preventDefault();
      running.abort();
    }
  });

  stop.addEventListener("click", () => {
    if (running) running.abort();
    prompt.focus();
  });

  $("pg-new").addEventListener("click", () => {
    if (running) running.abort();
    history.length = 0;
    conversation.replaceChildren();
    status.textContent = "New conversation.";
    prompt.focus();
  });

  select.addEventListener("change", () => {
    describe();
    const url = new URL(window.location.href);
    url.searchParams.set("llm", select.value);
    window.history.replaceState(null, "", url);
  });

  describe();
})();
