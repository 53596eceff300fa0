"""The playground page of a running ngpt-serve in a real browser: Debian's Chromium, headless, driven by
Playwright (pip install playwright; apt-get install chromium). Generates greedily, stops a long generation
half way, shows a bad field's error, and prints one JSON object of what it saw; the Swift test checks it.

    python3 playground_check.py BASE_URL [SCREENSHOT.png [PROMPT]]

With a screenshot path it also generates PROMPT (default "the king") with the page's own settings and saves the
page as it looks then (the README's screenshot is made this way, against a trained model).
"""
import json
import shutil
import sys
import time
import urllib.request

from playwright.sync_api import sync_playwright


def health(base):
    with urllib.request.urlopen(base + "/health", timeout=10) as r:
        return json.load(r)


def main():
    base = sys.argv[1].rstrip("/")
    for _ in range(300):  # the server may still be starting
        try:
            health(base)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit("no server at " + base)
    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser_path is None:
        sys.exit("no chromium on PATH (apt-get install chromium)")
    out = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        console_errors = []
        page.on("pageerror", lambda e: console_errors.append(str(e)))
        page.goto(base + "/")
        page.wait_for_function("document.getElementById('model').textContent.length > 0")
        out["title"] = page.title()
        out["model"] = page.text_content("#model")

        def generate(prompt, **fields):
            page.fill("#prompt", prompt)
            for name, value in fields.items():
                page.fill("#" + name, str(value))
            page.click("#generate")
            page.wait_for_function("!document.getElementById('generate').disabled", timeout=60000)
            return page.text_content("#generated") or "", page.text_content("#stats"), page.get_attribute(
                "#stats", "class")

        text, stats, _ = generate("the king", max_tokens=20, temperature=0, seed=1)
        out["greedy"] = text
        out["greedy_stats"] = stats
        page.fill("#stop", "café")
        text, stats, _ = generate("the king", max_tokens=40, temperature=0)
        out["stop"] = [text, stats]
        page.fill("#stop", "")

        # Stop half way: the browser aborts the fetch, the server frees the slot.
        page.fill("#max_tokens", "100000")
        page.fill("#temperature", "1")
        page.click("#generate")
        page.wait_for_function("(document.getElementById('generated')?.textContent ?? '').length > 20")
        out["running_while_streaming"] = health(base)["running"]
        page.click("#stop-button")
        page.wait_for_function("!document.getElementById('generate').disabled")
        out["stopped_stats"] = page.text_content("#stats")
        for _ in range(100):
            if health(base)["running"] == 0:
                break
            time.sleep(0.05)
        out["running_after_stop"] = health(base)["running"]

        _, stats, css = generate("the king", max_tokens=5, temperature=-1)
        out["error"] = [stats, css]
        out["page_errors"] = console_errors

        if len(sys.argv) > 2:
            page.fill("#temperature", "0.8")
            page.fill("#max_tokens", "160")
            page.fill("#seed", "1")
            generate(sys.argv[3] if len(sys.argv) > 3 else "the king")
            page.screenshot(path=sys.argv[2], full_page=True)
        browser.close()
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
