"""The official `openai` client against a running ngpt-serve (started by ServingTests): completions, streaming,
n > 1, stop strings, seeds and errors. Prints one JSON object of what it saw; the Swift test checks it.

    python3 openai_check.py BASE_URL
"""
import json
import sys
import time

import openai


def main():
    client = openai.OpenAI(base_url=sys.argv[1], api_key="none", max_retries=0, timeout=60)
    out = {}
    for attempt in range(300):  # the server may still be starting
        try:
            models = client.models.list()
            break
        except openai.APIConnectionError:
            time.sleep(0.1)
    else:
        sys.exit("no server at " + sys.argv[1])
    out["models"] = [m.id for m in models.data]
    r = client.completions.create(model=out["models"][0], prompt="the king", max_tokens=20, temperature=0)
    out["greedy"] = r.choices[0].text
    out["greedy_finish"] = r.choices[0].finish_reason
    out["usage"] = [r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens]
    r = client.completions.create(model="m", prompt="the", max_tokens=30, temperature=1.0, seed=7, n=3)
    out["n"] = [c.text for c in sorted(r.choices, key=lambda c: c.index)]
    out["seeded_again"] = client.completions.create(
        model="m", prompt="the", max_tokens=30, temperature=1.0, seed=7).choices[0].text
    r = client.completions.create(model="m", prompt="the king", max_tokens=40, temperature=0, stop=["café"])
    out["stop"] = [r.choices[0].text, r.choices[0].finish_reason]
    pieces, finish = [], None
    for chunk in client.completions.create(model="m", prompt="the king", max_tokens=20, temperature=0,
                                           stream=True):
        for c in chunk.choices:
            pieces.append(c.text)
            finish = c.finish_reason or finish
    out["stream"] = ["".join(pieces), len(pieces), finish]
    messages = [{"role": "system", "content": "A play."}, {"role": "user", "content": "the king"}]
    r = client.chat.completions.create(model="m", messages=messages, max_tokens=20, temperature=0)
    out["chat"] = [r.choices[0].message.role, r.choices[0].message.content, r.choices[0].finish_reason,
                   r.usage.completion_tokens, r.object, r.id[:9]]
    pieces, roles, finish = [], [], None
    for chunk in client.chat.completions.create(model="m", messages=messages, max_tokens=20, temperature=0,
                                                stream=True):
        for c in chunk.choices:
            roles += [c.delta.role] if c.delta.role else []
            pieces.append(c.delta.content or "")
            finish = c.finish_reason or finish
    out["chat_stream"] = ["".join(pieces), roles, finish, chunk.object]
    errors = {}
    for name, kwargs in [("max_tokens", dict(max_tokens=-1)), ("temperature", dict(temperature=-2)),
                         ("n", dict(n=1000)), ("too_long", dict(prompt="x" * 300000))]:
        args = dict(model="m", prompt="the", max_tokens=5)
        args.update(kwargs)
        try:
            client.completions.create(**args)
            errors[name] = None
        except openai.APIStatusError as e:
            errors[name] = [e.status_code, (e.body or {}).get("param") if isinstance(e.body, dict) else None]
    for name, kwargs in [("messages", dict(messages=[])), ("role", dict(messages=[{"role": "robot", "content": "x"}]))]:
        try:
            client.chat.completions.create(model="m", **kwargs)
            errors["chat_" + name] = None
        except openai.APIStatusError as e:
            errors["chat_" + name] = [e.status_code, (e.body or {}).get("param") if isinstance(e.body, dict) else None]
    out["errors"] = errors
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
