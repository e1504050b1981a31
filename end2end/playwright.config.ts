import { defineConfig } from "@playwright/test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// The release build under test, on its own port and a fresh SQLite database each run, with the
// Meta emulator (Graph API and customers) on the next port. Workers inherit the main process's
// environment, so they all see the same folder and ports.
const port = Number(process.env.E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;
process.env.E2E_DATA_DIR ??= mkdtempSync(join(tmpdir(), "qontak-e2e-"));
const dataDir = process.env.E2E_DATA_DIR;
process.env.E2E_EMULATOR_URL ??= `http://127.0.0.1:${port + 1}`;
const emulatorURL = process.env.E2E_EMULATOR_URL;
process.env.E2E_DATABASE_URL = `sqlite://${dataDir}/qontak.db?mode=rwc`;
const appSecret = "e2e-app-secret";
// Google sign-in: our client id, and the keys of its ID tokens served by the test itself
// (tests/google.spec.ts) in place of Google's; Google's script is a stub routed in by the
// fixtures (tests/fixtures.ts).
process.env.E2E_GOOGLE_CLIENT_ID = "qontak-e2e.apps.googleusercontent.com";
process.env.E2E_GOOGLE_JWKS_PORT ??= String(port + 2);

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  reporter: [["list"]],
  use: {
    browserName: "chromium",
    baseURL,
    trace: "retain-on-failure",
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
      // Debian's Chromium as root in a closed network: no sandbox, no background fetches.
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        // Google's script fails at once on every sign-in page (the Google test routes a stub
        // in before any lookup), whatever this machine's network does with the name.
        "--host-resolver-rules=MAP accounts.google.com ~NOTFOUND",
      ],
    },
  },
  webServer: [{
    command: `./target/release/qontak-meta-emulator --listen 127.0.0.1:${port + 1} --webhook-url ${baseURL}/webhooks/whatsapp --app-secret ${appSecret} --status-delay-ms 300`,
    cwd: "..",
    url: `${emulatorURL}/_emulator/health`,
    reuseExistingServer: false,
    timeout: 30_000,
  }, {
    command: "./target/release/qontak serve",
    cwd: "..",
    url: `${baseURL}/readyz`,
    reuseExistingServer: false,
    timeout: 60_000,
    env: {
      DATABASE_URL: process.env.E2E_DATABASE_URL,
      META_GRAPH_URL: emulatorURL,
      META_APP_SECRET: appSecret,
      META_VERIFY_TOKEN: "e2e-verify-token",
      // The emulator runs on loopback; outbound URL checks would refuse it.
      QONTAK_ALLOW_PRIVATE_URLS: "1",
      QONTAK_DATA_DIR: dataDir,
      LEPTOS_SITE_ADDR: `127.0.0.1:${port}`,
      QONTAK_PUBLIC_URL: baseURL,
      QONTAK_DEV_LOGIN: "1",
      GOOGLE_CLIENT_ID: process.env.E2E_GOOGLE_CLIENT_ID,
      GOOGLE_JWKS_URL: `http://127.0.0.1:${process.env.E2E_GOOGLE_JWKS_PORT}/certs`,
      RUST_LOG: "warn",
    },
  }],
});
