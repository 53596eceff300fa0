"""Bad and hostile input against a running ngpt-serve, over raw sockets (what no well-behaved client sends):
malformed JSON, invalid UTF-8, absurd numbers, a body over the limit, a body that never arrives, a streaming
client that never reads and one that disconnects. Meanwhile an ordinary request must still be answered quickly.
Prints one JSON object of what it saw; the Swift test checks it.

    python3 hostile_check.py HOST PORT [SERVER_PID]

With the server's pid it ends by sending it SIGTERM in the middle of a long stream: the stream must end at once
(with the text so far and `data: [DONE]`) and the server exit.
"""
import json
import os
import signal
import socket
import sys
import time


def request(host, port, body, path="/v1/completions", headers=None, timeout=30):
    """One HTTP/1.1 POST with Connection: close; returns (status, parsed JSON body or None)."""
    data = body if isinstance(body, bytes) else body.encode()
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            f"Content-Length: {len(data)}", "Connection: close"] + (headers or [])
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    payload = reply.split(b"\r\n\r\n", 1)[1]
    if b"transfer-encoding: chunked" in reply.split(b"\r\n\r\n", 1)[0].lower():
        payload = unchunk(payload)
    try:
        return status, json.loads(payload)
    except ValueError:
        return status, None


def unchunk(data):
    out = b""
    while data:
        size_line, data = data.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def health(host, port):
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    payload = reply.split(b"\r\n\r\n", 1)[1]
    if b"transfer-encoding: chunked" in reply.split(b"\r\n\r\n", 1)[0].lower():
        payload = unchunk(payload)
    return json.loads(payload)


def ordinary(host, port):
    """A small greedy completion: (status, seconds)."""
    start = time.monotonic()
    status, _ = request(host, port, json.dumps({"prompt": "the king", "max_tokens": 8, "temperature": 0}))
    return status, time.monotonic() - start


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    for _ in range(300):  # the server may still be starting
        try:
            health(host, port)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit(f"no server at {host}:{port}")
    out = {}

    def error(name, body, **kwargs):
        status, reply = request(host, port, body, **kwargs)
        e = (reply or {}).get("error", {}) if isinstance(reply, dict) else {}
        out[name] = [status, e.get("param"), e.get("message", "")]

    error("malformed_json", '{"prompt": "the", "max_tokens": ')
    error("not_an_object", '[1, 2, 3]')
    error("invalid_utf8", b'{"prompt": "the \xff\xfe king", "max_tokens": 4}')
    error("lone_surrogate", '{"prompt": "\\ud800", "max_tokens": 4}')
    error("negative_max_tokens", '{"prompt": "the", "max_tokens": -5}')
    error("absurd_max_tokens", '{"prompt": "the", "max_tokens": 1e300}')
    error("huge_integer", '{"prompt": "the", "seed": 123456789012345678901234567890}')
    error("nan_temperature", '{"prompt": "the", "temperature": NaN}')
    error("string_temperature", '{"prompt": "the", "temperature": "hot"}')
    error("deep_nesting", '{"prompt": ' + "[" * 100000 + "]" * 100000 + "}")
    error("huge_body", '{"prompt": "' + "x" * (4 << 20) + '"}')
    error("wrong_method_path", "{}", path="/v1/nothing")

    # A client that sends headers promising a body and then never sends it, and one that streams a long
    # completion but never reads: neither may hold up an ordinary request.
    stalled = socket.create_connection((host, port))
    stalled.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Length: 1000\r\n\r\n{{".encode())
    sleeper = socket.socket()
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sleeper.connect((host, port))
    body = json.dumps({"prompt": "the", "max_tokens": 100000, "stream": True}).encode()
    sleeper.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    time.sleep(1.0)
    out["ordinary_beside_stalled_clients"] = ordinary(host, port)
    out["running_with_sleeper"] = health(host, port)["running"]
    sleeper.close()
    stalled.close()

    # A streaming client that reads a little and disconnects: its slot is freed ...
    leaver = socket.create_connection((host, port))
    leaver.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    leaver.recv(1024)
    leaver.close()
    # ... and one that asked for the whole text at once and hangs up while it is made.
    quitter = socket.create_connection((host, port))
    whole = json.dumps({"prompt": "the", "max_tokens": 100000}).encode()
    quitter.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(whole)}\r\n\r\n".encode() + whole)
    time.sleep(0.3)
    out["running_with_quitter"] = health(host, port)["running"]
    quitter.close()
    closed = time.monotonic()
    while health(host, port)["running"] and time.monotonic() < closed + 10:
        time.sleep(0.02)
    out["running_after_disconnects"] = health(host, port)["running"]
    out["seconds_to_free_slots"] = time.monotonic() - closed
    out["ordinary_at_the_end"] = ordinary(host, port)

    if len(sys.argv) > 3:  # SIGTERM while a long stream runs
        streamer = socket.create_connection((host, port), timeout=30)
        streamer.sendall(f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        received = streamer.recv(65536)
        os.kill(int(sys.argv[3]), signal.SIGTERM)
        sent = time.monotonic()
        while chunk := streamer.recv(65536):
            received += chunk
        out["stream_end_after_sigterm_s"] = time.monotonic() - sent
        out["stream_ended_with_done"] = b"data: [DONE]" in received
        streamer.close()
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
