"""HTTP benchmark server, Python Panini 0.8.4: its aiohttp endpoint with the same route and
body as bench/src/bin/http_ours.rs.

    NATS_URL=nats://127.0.0.1:PORT python3 bench/http_panini.py HTTP_PORT

Panini connects to NATS before it serves, so bench/http.sh starts a nats-server and
passes NATS_URL. The logger is off (logger_required=False) so no log files are written.
"""

import os
import sys

from aiohttp import web
from panini import app as panini_app

port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
nats_url = os.environ.get("NATS_URL", "nats://127.0.0.1:4222")

app = panini_app.App(
    service_name="http_bench",
    servers=[nats_url],
    logger_required=False,
)
app.setup_web_server(host="127.0.0.1", port=port)


@app.http.get("/get")
async def get(request):
    return web.Response(text="Hello, world")


if __name__ == "__main__":
    app.start()
