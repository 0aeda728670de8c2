# The sender app of Panini's introduction, with the port taken from NATS_PORT; it also
# exercises our endpoints with str and bytes, then prints DONE.
import os
from panini import app as panini_app

app = panini_app.App(
    service_name="py_sender_app",
    host="127.0.0.1",
    port=int(os.environ["NATS_PORT"]),
    logger_files_path=os.environ.get("PANINI_LOGS", "logs"),
)


@app.task()
async def send():
    for _ in range(3):
        response = await app.request(
            subject="some.subject.for.request",
            message={"data": "request1234567890"},
        )
        print(response, flush=True)
        await app.publish(subject="some.subject.for.stream", message={"data": "event1234567890"})
    text = await app.request(subject="interop.rust.str", message="héllo", response_data_type=str)
    print(f"str reply {text!r}", flush=True)
    raw = await app.request(subject="interop.rust.bytes", message=b"\x00\x01\xff", response_data_type=bytes)
    print(f"bytes reply {raw!r}", flush=True)
    typed = await app.request(subject="interop.rust.typed", message={"id": 1, "item": "tea"})
    print(f"typed reply {typed!r}", flush=True)
    bad = await app.request(subject="interop.rust.typed", message="not json")
    print(f"bad reply {bad!r}", flush=True)
    print("DONE", flush=True)


if __name__ == "__main__":
    app.start()
