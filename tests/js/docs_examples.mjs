// Gemini's code-execution examples for the @google/genai JavaScript SDK, as the
// documentation writes them, changed only by the base URL (GOOGLE_GEMINI_BASE_URL,
// or httpOptions.baseUrl) and a local image.  Prints what the reader would see, as JSON.
import * as fs from "node:fs";
import { GoogleGenAI, createPartFromUri, createUserContent } from "@google/genai";

const [scenario, imagePath] = process.argv.slice(2);
const model = process.env.MODEL || "gemini-3-flash-preview";
const ai = process.env.BASE_URL_OPTION
  ? new GoogleGenAI({ apiKey: process.env.GEMINI_API_KEY, httpOptions: { baseUrl: process.env.BASE_URL_OPTION } })
  : new GoogleGenAI({});
const base64Image = fs.readFileSync(imagePath, { encoding: "base64" });
const image = { inlineData: { mimeType: "image/png", data: base64Image } };
const config = { tools: [{ codeExecution: {} }] };

function describe(parts) {
  return (parts || []).map((part) => {
    if (part.executableCode) return { kind: "code", code: part.executableCode.code, id: part.executableCode.id,
                                      language: part.executableCode.language, signed: !!part.thoughtSignature };
    if (part.codeExecutionResult) return { kind: "result", outcome: part.codeExecutionResult.outcome,
                                           output: part.codeExecutionResult.output, id: part.codeExecutionResult.id };
    if (part.inlineData) return { kind: "image", mimeType: part.inlineData.mimeType,
                                  bytes: Buffer.from(part.inlineData.data, "base64").length,
                                  keys: Object.keys(part.inlineData) };
    if (part.text !== undefined) return { kind: "text", text: part.text, signed: !!part.thoughtSignature };
    return { kind: "other", keys: Object.keys(part) };
  });
}

function summary(response) {
  const candidate = response.candidates[0];
  return { role: candidate.content?.role, parts: describe(candidate.content?.parts),
           finishReason: candidate.finishReason ?? null, usage: response.usageMetadata,
           responseId: response.responseId, modelVersion: response.modelVersion, text: response.text ?? null };
}

async function main() {
  if (scenario === "generate") {
    const response = await ai.models.generateContent({
      model,
      contents: [image, { text: "Zoom into the cup and tell me what is in it." }],
      config,
    });
    return [summary(response)];
  }
  if (scenario === "stream") {
    const stream = await ai.models.generateContentStream({
      model,
      contents: [image, { text: "Zoom into the cup and tell me what is in it." }],
      config,
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push({ ...summary(chunk), at: Date.now() });
    return chunks;
  }
  if (scenario === "chat" || scenario === "streamchat") {
    const chat = ai.chats.create({ model, config });
    const out = [];
    const messages = [[image, { text: "Zoom into the cup." }], "What colour is the top-left pixel?"];
    for (const message of messages) {
      if (scenario === "chat") {
        out.push(summary(await chat.sendMessage({ message })));
      } else {
        for await (const chunk of await chat.sendMessageStream({ message })) out.push(summary(chunk));
      }
    }
    return { turns: out, history: chat.getHistory().map((c) => c.role) };
  }
  if (scenario === "upload") {
    const file = await ai.files.upload({ file: imagePath, config: { mimeType: "image/png" } });
    const response = await ai.models.generateContent({
      model,
      contents: createUserContent([createPartFromUri(file.uri, file.mimeType), "Zoom into the cup."]),
      config,
    });
    const fetched = await ai.files.get({ name: file.name });
    await ai.files.delete({ name: file.name });
    return { file: { name: file.name, state: file.state, sizeBytes: file.sizeBytes, uri: file.uri },
             fetched: fetched.name, response: summary(response) };
  }
  throw new Error(`unknown scenario ${scenario}`);
}

main().then((result) => console.log(JSON.stringify(result)), (error) => {
  console.error(String(error?.stack || error));
  process.exit(1);
});
