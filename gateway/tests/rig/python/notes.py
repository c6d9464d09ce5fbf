"""A plain server-rendered notes app, Python standard library only, that
knows nothing of meinGPT: it reads the signed-in user from the gateway's
identity headers, takes notes with a form POST and answers a fetch().

It forbids framing (X-Frame-Options) and sets an unpartitioned
third-party cookie of its own, as many apps do; its page's script reads the
page's address, as analytics and error-reporting scripts do. `/_log` (for the tests,
asked directly) lists every request it served.

usage: notes.py PORT
"""

import html
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

NOTES: dict[str, list[str]] = {}
LOG: list[dict] = []
LOCK = threading.Lock()

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Notes</title>
<style>body {{ font: 15px/1.5 system-ui, sans-serif; margin: 1.5rem; color: #1e293b; }}</style>
</head><body>
<h1>Notes</h1>
<p>Signed in as <strong id="name">{name}</strong> (<span id="user">{user}</span>)</p>
<p>Cookies this app got: <span id="cookies">{cookies}</span></p>
<ul id="notes">{notes}</ul>
<form method="post" action="/notes"><input name="note" id="note"><button id="add">Add</button></form>
<p><button id="whoami">Who am I?</button> <span id="answer"></span>
   (fetches: <span id="fetches">0</span>)</p>
<p>Address this page's script read: <span id="address"></span></p>
<script>
  document.getElementById('address').textContent = location.href;
  document.getElementById('whoami').addEventListener('click', async () => {{
    const response = await fetch('/api/whoami');
    const body = response.ok ? await response.json() : {{}};
    document.getElementById('answer').textContent = response.status + ' ' + (body.user || '');
    const fetches = document.getElementById('fetches');
    fetches.textContent = String(Number(fetches.textContent) + 1);
  }});
</script>
</body></html>
"""


class Notes(BaseHTTPRequestHandler):
    def user(self):
        return self.headers.get("X-Auth-Request-User", "")

    def cookie_names(self):
        names = []
        for header in self.headers.get_all("Cookie") or []:
            for pair in header.split(";"):
                name = pair.split("=", 1)[0].strip()
                if name:
                    names.append(name)
        return names

    def record(self, note=None):
        with LOCK:
            LOG.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "user": self.user(),
                    "cookies": self.cookie_names(),
                    "note": note,
                }
            )

    def send(self, status, body, content_type, extra=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_log":
            with LOCK:
                return self.send(200, json.dumps(LOG), "application/json")
        self.record()
        if self.path == "/api/whoami":
            body = {
                "user": self.user(),
                "name": unquote(self.headers.get("X-Auth-Request-Preferred-Username", "")),
                "cookies": self.cookie_names(),
            }
            return self.send(200, json.dumps(body), "application/json")
        if self.path == "/" or self.path.startswith("/?"):
            with LOCK:
                notes = list(NOTES.get(self.user(), []))
            page = PAGE.format(
                name=html.escape(unquote(self.headers.get("X-Auth-Request-Preferred-Username", ""))),
                user=html.escape(self.user()),
                cookies=html.escape(", ".join(self.cookie_names()) or "none"),
                notes="".join(f"<li>{html.escape(n)}</li>" for n in notes),
            )
            return self.send(
                200,
                page,
                "text/html; charset=utf-8",
                [
                    ("X-Frame-Options", "SAMEORIGIN"),
                    ("Set-Cookie", "notes_seen=1; Path=/; Secure; SameSite=None"),
                ],
            )
        self.send(404, "not found\n", "text/plain")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        note = (form.get("note") or [""])[0]
        self.record(note)
        if self.path != "/notes":
            return self.send(404, "not found\n", "text/plain")
        with LOCK:
            NOTES.setdefault(self.user(), []).append(note)
        self.send_response(303)
        self.send_header("Location", "/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Notes)
    print(f"notes listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
