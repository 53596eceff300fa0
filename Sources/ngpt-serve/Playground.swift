/// The playground served at `/`: one page of plain HTML and JavaScript (no build step, nothing fetched from
/// elsewhere) that sends the form to `/v1/completions` with `stream: true`, shows the text as it arrives, and the
/// tokens, tokens/s and time to first token (from the usage chunk the request asks for).
enum Playground {
    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>ngpt playground</title>
        <style>
          :root { --ink: #1d232b; --muted: #6a7380; --line: #d9dee5; --accent: #2f6fdf; --bg: #f6f7f9; }
          * { box-sizing: border-box; }
          body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--ink); background: var(--bg); }
          header { display: flex; gap: 12px; align-items: baseline; padding: 14px 22px; background: #fff;
                   border-bottom: 1px solid var(--line); }
          header h1 { font-size: 18px; margin: 0; }
          header .model { color: var(--muted); }
          main { display: grid; grid-template-columns: 270px 1fr; gap: 18px; padding: 18px 22px; }
          fieldset { border: 1px solid var(--line); border-radius: 8px; background: #fff; padding: 10px 14px; }
          legend { color: var(--muted); padding: 0 4px; }
          label { display: grid; grid-template-columns: 1fr 96px; align-items: center; margin: 6px 0; }
          label.wide { grid-template-columns: 1fr; }
          input, textarea { font: inherit; border: 1px solid var(--line); border-radius: 6px; padding: 4px 6px; }
          textarea { width: 100%; resize: vertical; }
          #prompt { min-height: 110px; font-family: ui-monospace, monospace; }
          .buttons { display: flex; gap: 8px; margin: 10px 0; }
          button { font: inherit; border: 0; border-radius: 6px; padding: 7px 16px; cursor: pointer; }
          #generate { background: var(--accent); color: #fff; }
          #stop-button { background: #e4e7ec; }
          button:disabled { opacity: 0.5; cursor: default; }
          #output { white-space: pre-wrap; font-family: ui-monospace, monospace; background: #fff; min-height: 240px;
                    border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; margin: 0; }
          #output .prompt { color: var(--muted); }
          #stats { color: var(--muted); margin-top: 8px; min-height: 1.4em; }
          #stats.error { color: #b3261e; }
        </style>
        </head>
        <body>
        <header><h1>ngpt playground</h1><span class="model" id="model"></span></header>
        <main>
        <form id="settings">
          <fieldset>
            <legend>Sampling</legend>
            <label>max tokens <input id="max_tokens" type="number" min="1" value="200"></label>
            <label>temperature <input id="temperature" type="number" min="0" step="0.05" value="0.8"></label>
            <label>top p <input id="top_p" type="number" min="0.01" max="1" step="0.05" value="1"></label>
            <label>top k (0 = off) <input id="top_k" type="number" min="0" value="0"></label>
            <label>min p <input id="min_p" type="number" min="0" max="0.99" step="0.01" value="0"></label>
            <label>repetition penalty <input id="repetition_penalty" type="number" min="0.1" step="0.05" value="1">
            </label>
            <label>seed (blank = random) <input id="seed" type="number" min="0"></label>
            <label class="wide">stop strings, one per line <textarea id="stop" rows="2"></textarea></label>
          </fieldset>
        </form>
        <section>
          <textarea id="prompt" placeholder="Prompt">KING HENRY.</textarea>
          <div class="buttons">
            <button id="generate" type="button">Generate</button>
            <button id="stop-button" type="button" disabled>Stop</button>
          </div>
          <pre id="output"></pre>
          <div id="stats"></div>
        </section>
        </main>
        <script>
        "use strict";
        const $ = (id) => document.getElementById(id);
        let model = "ngpt", controller = null;

        fetch("/v1/models").then((r) => r.json()).then((m) => {
          model = m.data[0].id;
          $("model").textContent = model + " · context " + m.data[0].context_length + " tokens";
        });

        function body() {
          const number = (id) => Number($(id).value);
          const b = {
            model, prompt: $("prompt").value, stream: true, stream_options: { include_usage: true },
            max_tokens: number("max_tokens"), temperature: number("temperature"), top_p: number("top_p"),
            top_k: number("top_k"), min_p: number("min_p"), repetition_penalty: number("repetition_penalty"),
          };
          if ($("seed").value !== "") b.seed = number("seed");
          const stop = $("stop").value.split("\n").filter((s) => s.length > 0);
          if (stop.length > 0) b.stop = stop;
          return b;
        }

        function show(text, isError) {
          $("stats").textContent = text;
          $("stats").className = isError ? "error" : "";
        }

        async function generate() {
          const request = body();
          const output = $("output");
          output.replaceChildren();
          const shown = document.createElement("span");
          shown.className = "prompt";
          shown.textContent = request.prompt;
          const generated = document.createElement("span");
          generated.id = "generated";
          output.append(shown, generated);
          controller = new AbortController();
          $("generate").disabled = true;
          $("stop-button").disabled = false;
          show("waiting…");
          const start = performance.now();
          let first = null, chunks = 0, usage = null, finish = null;
          const rate = (tokens) => {
            const seconds = (performance.now() - (first ?? start)) / 1000;
            return seconds > 0 && tokens > 1 ? ((tokens - 1) / seconds).toFixed(1) : "–";
          };
          try {
            const response = await fetch("/v1/completions", {
              method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
              signal: controller.signal,
            });
            if (!response.ok) {
              const e = await response.json().catch(() => null);
              throw new Error(e?.error?.message ?? ("HTTP " + response.status));
            }
            const reader = response.body.getReader(), decoder = new TextDecoder();
            let buffered = "";
            for (;;) {
              const { value, done } = await reader.read();
              if (done) break;
              buffered += decoder.decode(value, { stream: true });
              let end;
              while ((end = buffered.indexOf("\n\n")) >= 0) {
                const event = buffered.slice(0, end);
                buffered = buffered.slice(end + 2);
                if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
                const chunk = JSON.parse(event.slice(6));
                if (chunk.usage) usage = chunk.usage;
                for (const c of chunk.choices) {
                  if (c.text) {
                    first ??= performance.now();
                    chunks += 1;
                    generated.textContent += c.text;
                  }
                  if (c.finish_reason) finish = c.finish_reason;
                }
              }
              show(chunks + " tokens · " + rate(chunks) + " tokens/s");
            }
            const tokens = usage ? usage.completion_tokens : chunks;
            const ttft = first === null ? "–" : Math.round(first - start) + " ms";
            show(tokens + " tokens · " + rate(tokens) + " tokens/s · first token after " + ttft +
                 " · prompt " + (usage ? usage.prompt_tokens : "?") + " tokens · finished: " + finish);
          } catch (e) {
            if (e.name === "AbortError") show("stopped after " + chunks + " tokens");
            else show(e.message, true);
          } finally {
            $("generate").disabled = false;
            $("stop-button").disabled = true;
            controller = null;
          }
        }

        $("generate").addEventListener("click", generate);
        $("stop-button").addEventListener("click", () => controller?.abort());
        $("prompt").addEventListener("keydown", (e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey) && controller === null) generate();
        });
        </script>
        </body>
        </html>
        """#
}
