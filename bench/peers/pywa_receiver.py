"""pywa's stock webhook integration on FastAPI, as its README shows it: WhatsApp(..., server=app)
registers the webhook routes (signature check with app_secret, verification challenge), and an
@wa.on_message handler stores each message it is handed.

pywa's route answers 200 and runs the handlers afterwards as a background task, and it hands them
only the first message of the first change of the first entry of a webhook.

Run: DB=... APP_SECRET=... uvicorn pywa_receiver:app --workers 2 --port $PORT
"""

import json
import os
import threading

from fastapi import FastAPI
from pywa import WhatsApp, types

import store

app = FastAPI()
wa = WhatsApp(
    phone_id=os.environ.get("PHONE_ID", "100000000000002"),
    token=os.environ.get("WA_TOKEN", "unused-by-the-benchmark"),
    server=app,
    webhook_endpoint="/webhooks/whatsapp",
    verify_token=os.environ.get("VERIFY_TOKEN", "bench-verify-token"),
    app_secret=os.environ["APP_SECRET"],
)

store.connect().close()  # the table exists before the first message

# pywa calls synchronous handlers from a thread pool: one connection per thread.
_local = threading.local()


def db():
    conn = getattr(_local, "db", None)
    if conn is None:
        conn = _local.db = store.connect()
    return conn


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@wa.on_message
def save(_: WhatsApp, msg: types.Message) -> None:
    conn = db()
    conn.execute(
        store.INSERT,
        (msg.id, msg.from_user.wa_id, str(msg.type), str(msg.timestamp), json.dumps(msg.raw)),
    )
    conn.commit()
