import { test, expect, hydrated, devSignIn, emulatorURL } from "./fixtures";

// An admin connects a number through Settings → WhatsApp (checked against the emulator),
// invites an agent, and the agent, in a browser of their own, joins through the link and is
// told plainly that the admin pages need an admin.
test("an admin connects a number and invites an agent who cannot open admin pages", async ({ page, browser, errors }) => {
  const serial = `${process.pid % 1000}`.padStart(3, "0") + `${Date.now() % 1000}`.padStart(3, "0");
  const phoneNumberId = `1088000${serial}`;
  const wabaId = `2088000${serial}`;
  const display = `+1555${serial}1`;
  const registered = await page.request.post(`${emulatorURL}/_emulator/numbers`, {
    data: { phone_number_id: phoneNumberId, waba_id: wabaId, display_phone_number: display, verified_name: "Teams Shop" },
  });
  expect(registered.ok()).toBeTruthy();

  await devSignIn(page, `owner-${serial}@example.test`);
  await page.goto("/settings/whatsapp");
  await hydrated(page);
  await page.getByLabel("WhatsApp Business Account id").fill(wabaId);
  await page.getByLabel("Phone number id").fill(phoneNumberId);
  await page.getByLabel("Access token", { exact: true }).fill("e2e-access-token");
  await page.getByRole("button", { name: "Connect", exact: true }).click();
  // (The development sign-in banner is a status too: the form's outcome is `p.ok`.)
  await expect(page.locator("p.ok")).toContainText("Number connected");
  await expect(page.locator("td.display-phone")).toHaveText(display);
  await expect(page.locator("td.quality")).toHaveText("GREEN");
  await expect(page.locator("code.webhook-url")).toHaveText(/\/webhooks\/whatsapp$/);
  await expect(page.locator("code.verify-token")).toHaveText("e2e-verify-token");
  await page.getByRole("button", { name: "Check health" }).click();
  await expect(page.locator(".health .check.ok")).toHaveCount(3);

  await page.goto("/settings/members");
  await hydrated(page);
  const agentEmail = `agent-${serial}@example.test`;
  await page.getByLabel("E-mail").fill(agentEmail);
  await page.getByRole("button", { name: "Create invitation link" }).click();
  const link = await page.locator("input.invite-link").inputValue();
  expect(link).toContain("/invite/");

  const agentContext = await browser.newContext();
  const agent = await agentContext.newPage();
  await agent.goto(link);
  await agent.getByRole("link", { name: "Sign in to accept" }).click();
  await agent.getByLabel("E-mail").fill(agentEmail);
  await agent.getByRole("button", { name: "Sign in" }).click();
  await expect(agent).toHaveURL(/\/invite\//);
  await expect(agent.locator(".invite-workspace")).toContainText(`owner-${serial}`);
  await agent.getByRole("button", { name: "Accept invitation" }).click();
  await expect(agent).toHaveURL(/\/inbox$/);

  for (const path of ["/settings/members", "/settings/tokens", "/settings/whatsapp"]) {
    await agent.goto(path);
    await expect(agent.getByRole("alert")).toContainText("You need to be an admin");
  }
  expect((await agent.request.get("/api/v1/tokens")).status()).toBe(403);
  // The same link a second time: refused in plain words.
  await agent.goto(link);
  await expect(agent.getByRole("alert")).toContainText("already used");
  await agentContext.close();
});
