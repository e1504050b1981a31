// An Express webhook receiver built the way whatsapp-api-js documents it: its Express middleware's
// handle_post() checks X-Hub-Signature-256 and calls post(), which hands `on.message` the
// message; the handler stores it in SQLite (better-sqlite3, WAL, synchronous=FULL) before the
// promise resolves, so the 200 goes out after the row is durable. post() reads only
// entry[0].changes[0].value.messages[0]: the rest of a batch never reaches the handler.
//
// Run: PORT=... APP_SECRET=... DB=... node server.js

import express from "express";
import Database from "better-sqlite3";
import { WhatsAppAPI } from "whatsapp-api-js/middleware/express";
import { NodeNext } from "whatsapp-api-js/setup/node";

const port = Number(process.env.PORT ?? 3000);
const db = new Database(process.env.DB ?? "peer-express.db");
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec(`CREATE TABLE IF NOT EXISTS messages (
    wamid TEXT PRIMARY KEY,
    wa_from TEXT,
    type TEXT,
    timestamp TEXT,
    body TEXT
)`);
const insert = db.prepare(
  "INSERT OR IGNORE INTO messages (wamid, wa_from, type, timestamp, body) VALUES (?, ?, ?, ?, ?)",
);

const Whatsapp = new WhatsAppAPI(
  NodeNext({
    token: process.env.WA_TOKEN ?? "unused-by-the-benchmark",
    appSecret: process.env.APP_SECRET,
    webhookVerifyToken: process.env.VERIFY_TOKEN ?? "bench-verify-token",
    v: "v24.0",
  }),
);

Whatsapp.on.message = ({ message }) => {
  insert.run(message.id, message.from, message.type, message.timestamp, JSON.stringify(message));
};

const app = express();
app.get("/healthz", (_req, res) => res.json({ status: "ok" }));
app.get("/webhooks/whatsapp", (req, res) => {
  try {
    res.send(Whatsapp.handle_get(req));
  } catch (e) {
    res.sendStatus(e);
  }
});
app.post("/webhooks/whatsapp", express.text({ type: "*/*" }), async (req, res) => {
  res.sendStatus(await Whatsapp.handle_post(req));
});
app.listen(port, "127.0.0.1");
