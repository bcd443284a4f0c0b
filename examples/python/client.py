#!/usr/bin/env python3
"""buoycast's live stream in Python: prints every observation as one JSON line.

Run (Python 3.8 or later, standard library only; the gateway on
127.0.0.1:3000, e.g. `cargo run --release`):

    python3 examples/python/client.py
    python3 examples/python/client.py --station 46026,46042 --fields waveHeightM,windSpeedMps
    python3 examples/python/client.py --url http://gateway:3000 --count 10   # exit after 10

A full Server-Sent Events reader: multi-line `data:`, `id:`, `retry:`,
comments (keepalives), and reconnection with `Last-Event-ID`, so the gateway
replays whatever was missed while we were away. Status lines go to stderr;
stdout carries only observations.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def events(response):
    """Yields (event, data, id) for each event of an SSE response."""
    event, data, event_id = "message", [], None
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data), event_id
            event, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue  # a comment: the keepalive
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value
        elif name == "retry" and value.isdigit():
            events.retry_ms = int(value)


events.retry_ms = 3000


def main():
    parser = argparse.ArgumentParser(description="Print buoycast observations as JSON lines.")
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="the gateway")
    parser.add_argument("--station", help="comma-separated station ids")
    parser.add_argument("--fields", help="comma-separated measurement names")
    parser.add_argument("--token", help="access token, when the gateway has auth.tokens")
    parser.add_argument("--count", type=int, help="exit after this many observations")
    args = parser.parse_args()

    query = {k: v for k, v in (("station", args.station), ("fields", args.fields),
                               ("access_token", args.token)) if v}
    url = args.url.rstrip("/") + "/v1/observations/stream"
    if query:
        url += "?" + urllib.parse.urlencode(query)

    last_id, received = None, 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id:
            headers["Last-Event-ID"] = last_id
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
                for event, data, event_id in events(response):
                    if event == "connection":
                        print(f"connected to {url} {data}", file=sys.stderr, flush=True)
                    elif event == "observation":
                        last_id = event_id or last_id
                        print(json.dumps(json.loads(data)), flush=True)
                        received += 1
                        if args.count and received >= args.count:
                            return 0
                    elif event == "reset":
                        print(f"reset {data}: refetch /v1/observations for the gap", file=sys.stderr)
                    elif event == "lagged":
                        print(f"lagged {data}: reconnecting to catch up", file=sys.stderr)
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", "replace")
            print(f"stream refused: {error.code} {body}", file=sys.stderr)
            if error.code < 500:
                return 1
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            print(f"stream error ({error}); reconnecting", file=sys.stderr)
        time.sleep(events.retry_ms / 1000)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
