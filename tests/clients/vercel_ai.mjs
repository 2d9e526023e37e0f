// The Vercel AI SDK's default OpenAI provider (the Responses API) against mcpd: one generateText and
// one streamText call; prints what the SDK made of them as JSON. Run from the directory the SDK is
// installed in (tests/agents.sh): node vercel_ai.mjs BASE_URL API_KEY MODEL
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const provider = createOpenAI({ baseURL, apiKey });
const generated = await generateText({ model: provider(model), prompt: "Say hello", maxRetries: 0 });
const stream = streamText({ model: provider(model), prompt: "Say hello", maxRetries: 0 });
let streamed = "";
for await (const piece of stream.textStream) streamed += piece;
console.log(JSON.stringify({
  text: generated.text, usage: generated.usage, finishReason: generated.finishReason,
  streamed, streamedFinishReason: await stream.finishReason, streamedUsage: await stream.usage,
}));
