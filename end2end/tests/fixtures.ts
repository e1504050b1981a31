import { test as base, expect, Page } from "@playwright/test";

/**
 * Google's Identity Services script as the sign-in page loads it, played by a stub (Google is
 * out of reach here): `initialize` keeps the config, `renderButton` draws a button that hands
 * the page's callback `window.__gsiCredential`, as Google's button hands it the ID token.
 */
export const GSI_CLIENT_URL = "https://accounts.google.com/gsi/client";
const GSI_STUB = `window.google = { accounts: { id: {
  initialize(config) { window.__gsiConfig = config; },
  renderButton(element, options) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Continue with Google";
    button.dataset.theme = options.theme;
    button.addEventListener("click", () =>
      window.__gsiConfig.callback({ credential: window.__gsiCredential, select_by: "btn" }));
    element.appendChild(button);
  },
  prompt() {},
} } };`;

/**
 * Routes Google's script to the stub in `page`. Only the Google test does: routing makes
 * Playwright intercept every request of the page, which slowed the live tests' event streams
 * into flakiness. Elsewhere the script fails to load (no Google here), which the sign-in page
 * reports in its own words and the `errors` fixture ignores.
 */
export async function stubGoogle(page: Page) {
  await page.route(GSI_CLIENT_URL, (route) =>
    route.fulfill({ contentType: "text/javascript", body: GSI_STUB }));
}

/** Fails the test on any page error or console error (a CSP violation, a hydration panic). */
export const test = base.extend<{ errors: string[] }>({
  errors: async ({ page }, use) => {
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error" && !m.location().url.startsWith("https://accounts.google.com/")) errors.push(`console: ${m.text()} at ${m.location().url}`);
    });
    await use(errors);
    expect(errors, "no errors in the browser").toEqual([]);
  },
});

export { expect };

/** Waits until the WASM client has hydrated the page. */
export async function hydrated(page: Page) {
  await expect(page.locator("html")).toHaveAttribute("data-hydrated", "true");
}

/** Development sign-in as `email`; lands in the inbox. */
export async function devSignIn(page: Page, email: string) {
  await page.goto("/login");
  await page.getByLabel("E-mail").fill(email);
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page).toHaveURL(/\/inbox$/);
}

/** The Meta emulator that stands in for Graph and plays the customers. */
export const emulatorURL = process.env.E2E_EMULATOR_URL!;

let nextNumber = 0;

/**
 * Registers a fresh business number at the emulator and connects it, through the admin CLI, to
 * the workspace of the signed-in user of `page`. Returns Meta's ids and the number's display form.
 */
export async function connectNumber(page: Page) {
  const session = await (await page.request.get("/auth/session")).json();
  const workspace = session.workspaces.find((w: { id: string }) => w.id === session.current_workspace)
    ?? session.workspaces[0];
  const serial = `${process.pid % 1000}`.padStart(3, "0") + `${nextNumber++}`.padStart(3, "0");
  const phoneNumberId = `1099000${serial}`;
  const wabaId = `2099000${serial}`;
  const display = `+1555${serial}0`;
  const registered = await page.request.post(`${emulatorURL}/_emulator/numbers`, {
    data: { phone_number_id: phoneNumberId, waba_id: wabaId, display_phone_number: display, verified_name: "E2E Shop" },
  });
  expect(registered.ok()).toBeTruthy();
  const { execFileSync } = await import("node:child_process");
  execFileSync("../target/release/qontak", [
    "admin", "connect-number", "--workspace", workspace.name, "--waba-id", wabaId,
    "--phone-number-id", phoneNumberId, "--access-token", "e2e-access-token", "--display-phone", display,
  ], { env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL, QONTAK_DATA_DIR: process.env.E2E_DATA_DIR } });
  return { phoneNumberId, wabaId, display, workspace };
}

/** A customer writes to `phoneNumberId` through the emulator (any Meta inbound message object). */
export async function customerSends(page: Page, phoneNumberId: string, waId: string, message: object, profileName = "Customer") {
  const res = await page.request.post(`${emulatorURL}/_emulator/customers/${waId}/messages`, {
    data: { phone_number_id: phoneNumberId, profile_name: profileName, ...message },
  });
  expect(res.ok(), await res.text()).toBeTruthy();
  return res.json() as Promise<{ wamid: string; webhook_status: number }>;
}
