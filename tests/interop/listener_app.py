# The listener app of Panini's introduction, with the port taken from NATS_PORT.
import os
from panini import app as panini_app

app = panini_app.App(
    service_name="py_listener_app",
    host="127.0.0.1",
    port=int(os.environ["NATS_PORT"]),
    logger_files_path=os.environ.get("PANINI_LOGS", "logs"),
)


@app.listen("some.subject.for.request")
async def request_listener(msg):
    print(f"request {msg.data} from {msg.subject} has been processed", flush=True)
    return {"success": True, "message": "request has been processed"}


@app.listen("some.subject.for.stream")
async def stream_listener(msg):
    print(f"event {msg.data} from {msg.subject} has been processed", flush=True)


@app.listen("interop.str", data_type=str)
async def str_listener(msg):
    return f"python got str {msg.data!r}"


@app.listen("interop.bytes", data_type=bytes)
async def bytes_listener(msg):
    return msg.data[::-1]


if __name__ == "__main__":
    app.start()
