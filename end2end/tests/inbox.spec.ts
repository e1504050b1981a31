import { execFileSync } from "node:child_process";
import { Page, request as playwrightRequest } from "@playwright/test";
import { test, expect, hydrated, devSignIn, connectNumber, customerSends, emulatorURL } from "./fixtures";

// A 1×1 PNG, as a customer's photo.
const PNG = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
  "base64",
);

let serial = 0;
function unique(prefix: string) {
  serial += 1;
  return `${prefix}${Date.now() % 100000}${serial}`;
}

/** Signs in a fresh admin with a connected number; the inbox is open and live. */
async function adminWithNumber(page: Page) {
  const email = `${unique("admin")}@example.com`;
  await devSignIn(page, email);
  const number = await connectNumber(page);
  await page.goto("/inbox");
  await hydrated(page);
  await expect(page.locator(".live-state")).toHaveAttribute("data-live", "on");
  return { email, ...number };
}

function waId() {
  return `62812${String(Date.now()).slice(-6)}${serial++ % 10}`;
}

test("a customer's text, image, location and reaction appear live without a reload", async ({ page, errors }) => {
  const { phoneNumberId } = await adminWithNumber(page);
  // Opening a conversation changes the address in place; a reload would fire "load".
  let navigations = 0;
  page.on("load", () => navigations++);
  const customer = waId();

  const first = await customerSends(page, phoneNumberId, customer, { type: "text", text: { body: "Halo, is the *blue* shirt in stock?" } }, "Siti Aminah");
  const row = page.getByRole("link", { name: /Siti Aminah/ });
  await expect(row).toBeVisible({ timeout: 1000 });
  await expect(row.locator(".badge")).toHaveText("1");
  await expect(page).toHaveTitle(/^\(1\) Inbox/);
  await row.click();
  const thread = page.getByRole("log", { name: "Messages" });
  await expect(thread.getByText("is the")).toBeVisible();
  await expect(thread.locator("strong", { hasText: "blue" })).toBeVisible();
  // Opening it reads it.
  await expect(row.locator(".badge")).toHaveCount(0);

  const media = await (await page.request.post(`${emulatorURL}/_emulator/media?filename=shirt.png`, {
    headers: { "Content-Type": "image/png" }, data: PNG,
  })).json();
  await customerSends(page, phoneNumberId, customer, { type: "image", image: { id: media.id, caption: "This one" } }, "Siti Aminah");
  await expect(thread.getByText("This one")).toBeVisible({ timeout: 1000 });
  await expect(thread.locator("img.photo")).toBeVisible({ timeout: 5000 });

  await customerSends(page, phoneNumberId, customer, {
    type: "location", location: { latitude: -6.2, longitude: 106.816666, name: "Toko Kita", address: "Jl. Sudirman 1" },
  }, "Siti Aminah");
  await expect(thread.getByText("Toko Kita")).toBeVisible({ timeout: 1000 });
  await expect(thread.getByRole("link", { name: "Open the map" })).toHaveAttribute("href", /mlat=-6\.2/);

  await customerSends(page, phoneNumberId, customer, { type: "reaction", reaction: { message_id: first.wamid, emoji: "👍" } }, "Siti Aminah");
  const firstBubble = page.locator(".bubble-row", { hasText: "is the" });
  await expect(firstBubble.locator(".reaction")).toHaveText("👍", { timeout: 1000 });
  expect(navigations, "no reload").toBe(0);
});

test("the agent's reply reaches the customer once and its ticks go sent, delivered, read", async ({ page, errors }) => {
  const { phoneNumberId } = await adminWithNumber(page);
  const customer = waId();
  await customerSends(page, phoneNumberId, customer, { type: "text", text: { body: "Can I change my order?" } }, "Budi");
  await page.getByRole("link", { name: /Budi/ }).click();
  await expect(page.locator(".window-banner")).toContainText("left to reply freely");

  const box = page.getByLabel("Message", { exact: true });
  await box.fill("Of course — what would you like?");
  await box.press("Enter");
  // A second Enter on the now empty box sends nothing.
  await box.press("Enter");
  const bubble = page.locator(".bubble-row.out", { hasText: "what would you like" });
  await expect(bubble).toHaveCount(1);
  const tick = bubble.locator("[data-status]");
  await expect(tick).toHaveAttribute("data-status", /queued|sent|delivered|read/);
  await expect(tick).toHaveAttribute("data-status", /delivered|read/, { timeout: 5000 });
  await expect(tick).toHaveAttribute("data-status", "read", { timeout: 5000 });
  await expect(tick).toHaveAttribute("aria-label", "Read");

  const sent = await (await page.request.get(`${emulatorURL}/_emulator/sent?to=${customer}`)).json();
  const mine = (Array.isArray(sent) ? sent : sent.data ?? []).filter((s: { body?: string; content?: unknown }) =>
    JSON.stringify(s).includes("what would you like"));
  expect(mine, "the emulator received the reply exactly once").toHaveLength(1);
  // The status webhooks arrived in order sent → delivered → read.
  const statuses: string[] = (mine[0].statuses ?? []).map((s: { status: string } | string) => typeof s === "string" ? s : s.status);
  for (const s of ["sent", "delivered", "read"]) expect(statuses, JSON.stringify(mine[0])).toContain(s);
});

test("with the window closed, the composer offers templates only and sends one with variables", async ({ page, errors }) => {
  const { phoneNumberId, wabaId } = await adminWithNumber(page);
  const customer = waId();
  await page.request.post(`${emulatorURL}/_emulator/templates`, {
    data: { waba_id: wabaId, templates: [{ name: "order_shipped", language: "en_US", status: "APPROVED", category: "UTILITY",
      components: [{ type: "BODY", text: "Hi {{1}}, your order {{2}} has shipped.", example: { body_text: [["Ana", "A-1"]] } }] }] },
  });
  const synced = await page.request.post("/api/v1/templates/sync", { headers: { Origin: new URL(page.url()).origin }, data: {} });
  expect(synced.ok(), await synced.text()).toBeTruthy();
  const yesterday = Math.floor(Date.now() / 1000) - 25 * 3600;
  await customerSends(page, phoneNumberId, customer, { type: "text", text: { body: "Where is my parcel?" }, timestamp: String(yesterday) }, "Rina");
  await page.getByRole("link", { name: /Rina/ }).click();
  await expect(page.locator(".window-banner")).toHaveAttribute("data-window", "closed");
  await expect(page.getByLabel("Message", { exact: true })).toHaveCount(0);
  await page.getByLabel("Template").selectOption({ label: "order_shipped (en_US)" });
  await page.getByLabel("{{1}}").fill("Rina");
  await page.getByLabel("{{2}}").fill("B-77");
  await expect(page.getByLabel("Preview")).toContainText("Hi Rina, your order B-77 has shipped.");
  await page.getByRole("button", { name: "Send template" }).click();
  await expect(page.locator(".bubble-row.out", { hasText: "order_shipped" }).locator("[data-status]"))
    .toHaveAttribute("data-status", /sent|delivered|read/, { timeout: 5000 });
  const sent = await (await page.request.get(`${emulatorURL}/_emulator/sent?to=${customer}`)).json();
  const list = Array.isArray(sent) ? sent : sent.data ?? [];
  expect(list).toHaveLength(1);
  expect(JSON.stringify(list[0])).toContain("B-77");
});

test("two agents see each other's assignment and reply live", async ({ page, browser, errors }) => {
  const admin = await adminWithNumber(page);
  const agentEmail = `${unique("agent")}@example.com`;
  execFileSync("../target/release/qontak", ["admin", "add-user", "--workspace", admin.workspace.name, "--email", agentEmail, "--role", "agent"], {
    env: { ...process.env, DATABASE_URL: process.env.E2E_DATABASE_URL, QONTAK_DATA_DIR: process.env.E2E_DATA_DIR },
  });
  const agentContext = await browser.newContext();
  const agent = await agentContext.newPage();
  await devSignIn(agent, agentEmail);
  await hydrated(agent);
  await expect(agent.locator(".live-state")).toHaveAttribute("data-live", "on");

  const customer = waId();
  await customerSends(page, admin.phoneNumberId, customer, { type: "text", text: { body: "Hello team" } }, "Dewi");
  await expect(agent.getByRole("link", { name: /Dewi/ })).toBeVisible({ timeout: 1000 });
  await page.getByRole("link", { name: /Dewi/ }).click();
  await page.getByRole("button", { name: "Assign to me" }).click();
  await expect(agent.getByRole("link", { name: /Dewi/ }).locator(".assignee")).toContainText("admin", { timeout: 2000 });

  await agent.getByRole("link", { name: /Dewi/ }).click();
  const box = agent.getByLabel("Message", { exact: true });
  await box.fill("Agent here, happy to help");
  await box.press("Enter");
  await expect(page.getByRole("log", { name: "Messages" }).getByText("Agent here, happy to help")).toBeVisible({ timeout: 2000 });
  await agentContext.close();
});

test("after the event stream is cut and restored, the messages sent meanwhile appear", async ({ page, context, errors }) => {
  const { phoneNumberId } = await adminWithNumber(page);
  const customer = waId();
  await customerSends(page, phoneNumberId, customer, { type: "text", text: { body: "First message" } }, "Joko");
  await page.getByRole("link", { name: /Joko/ }).click();
  const thread = page.getByRole("log", { name: "Messages" });
  await expect(thread.getByText("First message")).toBeVisible();

  const outside = await playwrightRequest.newContext();
  await context.setOffline(true);
  await expect(page.getByText("reconnecting")).toBeVisible();
  for (const body of ["Sent while you were away", "And one more"]) {
    const res = await outside.post(`${emulatorURL}/_emulator/customers/${customer}/messages`, {
      data: { phone_number_id: phoneNumberId, profile_name: "Joko", type: "text", text: { body } },
    });
    expect(res.ok()).toBeTruthy();
  }
  await context.setOffline(false);
  await expect(page.locator(".live-state")).toHaveAttribute("data-live", "on", { timeout: 10000 });
  await expect(thread.getByText("Sent while you were away")).toBeVisible({ timeout: 5000 });
  await expect(thread.getByText("And one more")).toBeVisible();
  await outside.dispose();
  // Going offline is expected to log failed requests; nothing else may fail.
  errors.splice(0, errors.length, ...errors.filter((e) => !/ERR_INTERNET_DISCONNECTED|net::|Failed to load resource|EventSource/.test(e)));
});

test("search finds a message and opens it in its thread", async ({ page, errors }) => {
  const { phoneNumberId } = await adminWithNumber(page);
  const customer = waId();
  await customerSends(page, phoneNumberId, customer, { type: "text", text: { body: "Please send invoice 44718 again" } }, "Agus");
  for (let i = 0; i < 3; i++) {
    await customerSends(page, phoneNumberId, customer, { type: "text", text: { body: `filler ${i}` } }, "Agus");
  }
  await page.keyboard.press("/");
  await expect(page.getByLabel("Search messages and contacts")).toBeFocused();
  await page.keyboard.type("invoice 4471");
  await page.keyboard.press("Enter");
  const hit = page.getByRole("region", { name: "Search results" }).getByRole("link", { name: /invoice 44718/ });
  await expect(hit).toBeVisible();
  await hit.click();
  await expect(page).toHaveURL(/\?c=.*&m=/);
  const target = page.locator(".bubble-row.highlight", { hasText: "invoice 44718" });
  await expect(target).toBeVisible();
  await expect(target).toBeInViewport();
});

test("keyboard: j opens the first conversation, e resolves it, ? shows help", async ({ page, errors }) => {
  const { phoneNumberId } = await adminWithNumber(page);
  await customerSends(page, phoneNumberId, waId(), { type: "text", text: { body: "keyboard test" } }, "Kiki");
  await expect(page.getByRole("link", { name: /Kiki/ })).toBeVisible();
  await page.locator("body").press("j");
  await expect(page).toHaveURL(/\?c=/);
  await expect(page.getByRole("log", { name: "Messages" }).getByText("keyboard test")).toBeVisible();
  await page.locator("body").press("e");
  // Resolved conversations leave the Open list.
  await expect(page.getByRole("link", { name: /Kiki/ })).toHaveCount(0);
  await page.locator("body").press("?");
  await expect(page.getByRole("dialog", { name: "Keyboard shortcuts" })).toBeVisible();
  await page.keyboard.press("Escape");
  await expect(page.getByRole("dialog")).toHaveCount(0);
});

test("the inbox works on a 360 px wide phone", async ({ page, errors }) => {
  await page.setViewportSize({ width: 360, height: 740 });
  const { phoneNumberId } = await adminWithNumber(page);
  await customerSends(page, phoneNumberId, waId(), { type: "text", text: { body: "from a phone" } }, "Lina");
  await page.getByRole("link", { name: /Lina/ }).click();
  await expect(page.getByRole("log", { name: "Messages" }).getByText("from a phone")).toBeVisible();
  await expect(page.getByRole("link", { name: /Lina/ })).toBeHidden();
  await page.getByRole("link", { name: "Back to the conversations" }).click();
  await expect(page.getByRole("link", { name: /Lina/ })).toBeVisible();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  expect(overflow, "no sideways scrolling").toBeLessThanOrEqual(0);
});
