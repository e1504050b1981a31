"""A plain FastAPI webhook receiver, written the honest, idiomatic way: verify X-Hub-Signature-256
over the raw body, store every message of every entry and change, commit, then answer 200.

Run: DB=... APP_SECRET=... uvicorn fastapi_receiver:app --workers 2 --port $PORT
"""

import hashlib
import hmac
import json
import os

from fastapi import FastAPI, Request, Response

import store

APP_SECRET = os.environ["APP_SECRET"].encode()
VERIFY_TOKEN = os.environ.get("VERIFY_TOKEN", "bench-verify-token")

db = store.connect()  # one connection per worker process
app = FastAPI()


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


@app.get("/webhooks/whatsapp")
def challenge(request: Request) -> Response:
    q = request.query_params
    if q.get("hub.mode") == "subscribe" and q.get("hub.verify_token") == VERIFY_TOKEN:
        return Response(q.get("hub.challenge", ""), media_type="text/plain")
    return Response(status_code=403)


@app.post("/webhooks/whatsapp")
async def webhook(request: Request) -> Response:
    body = await request.body()
    expected = "sha256=" + hmac.new(APP_SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("x-hub-signature-256", "")):
        return Response(status_code=401)
    try:
        payload = json.loads(body)
    except ValueError:
        return Response(status_code=400)
    rows = [
        store.row(message)
        for entry in payload.get("entry", [])
        for change in entry.get("changes", [])
        for message in change.get("value", {}).get("messages", [])
    ]
    if rows:
        db.executemany(store.INSERT, rows)
        db.commit()  # durable (synchronous=FULL) before the 200
    return Response(status_code=200)
