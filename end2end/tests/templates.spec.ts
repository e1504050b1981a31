import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test, expect, hydrated, devSignIn, connectNumber, emulatorURL } from "./fixtures";

/** The validation table the Rust unit test runs natively (app/src/templates/cases.json). */
const cases: { case: string; valid: boolean; field?: string; template: unknown }[] = JSON.parse(
  readFileSync(join(__dirname, "../../app/src/templates/cases.json"), "utf8"),
);

test("the shared validation table gives the same answers in the browser (WASM)", async ({ page, errors }) => {
  await page.goto("/login");
  await hydrated(page);
  // A string, so the test runner's module transform leaves the browser's import() alone; the
  // page's own module is already initialised by hydration.
  const templates = JSON.stringify(cases.map((c) => JSON.stringify(c.template)));
  const results: { field: string }[][] = await page.evaluate(`(async () => {
    const wasm = await import("/pkg/qontak.js");
    return ${templates}.map((t) => JSON.parse(wasm.validateTemplate(t)));
  })()`);
  expect(cases.length).toBeGreaterThanOrEqual(25);
  cases.forEach((c, i) => {
    if (c.valid) expect(results[i], c.case).toEqual([]);
    else expect(results[i].map((p) => p.field), c.case).toContain(c.field);
  });
});

test("an admin creates a template and sees Meta's approval arrive live", async ({ page, errors }) => {
  await devSignIn(page, `templates-${Date.now()}@e2e.test`);
  await connectNumber(page);
  await page.goto("/templates");
  await hydrated(page);
  await expect(page.getByRole("heading", { name: "Message templates" })).toBeVisible();

  const name = `order_ready_${Date.now()}`;
  const form = page.locator("form.builder-form");
  await form.locator('input[name="name"]').fill(name);
  await form.locator('textarea[name="body"]').fill("Hi {{1}}, your order is ready for pickup.");
  // Meta's rule shows while typing: the variable needs an example.
  await expect(page.locator('.issues li[data-field="body.example"]')).toBeVisible();
  await page.getByLabel("Body example 1").fill("Ana");
  await expect(page.locator(".issues li")).toHaveCount(0);
  await expect(page.locator(".wa-body")).toHaveText("Hi Ana, your order is ready for pickup.");
  await page.getByRole("button", { name: "Submit for review" }).click();

  const row = page.locator(`tr[data-template="${name}"]`);
  await expect(row.locator("[data-status]")).toHaveText("PENDING");

  // Meta approves: the emulator posts message_template_status_update to the product.
  const listed = await (await page.request.get(`${emulatorURL}/_emulator/templates`)).json();
  const meta = listed.find((t: { name: string }) => t.name === name);
  const fired = await page.request.post(`${emulatorURL}/_emulator/templates/${meta.id}/status`, {
    data: { status: "APPROVED" },
  });
  expect(fired.ok()).toBeTruthy();
  // No reload: the event stream flips the row.
  await expect(row.locator("[data-status]")).toHaveText("APPROVED");

  // The admin edits the approved template: the builder takes its content, name and language
  // stay locked, Meta's edit limits are explained, and the edit goes back to review.
  await row.getByRole("button", { name: "Edit" }).click();
  await expect(page.getByRole("heading", { name: `Edit “${name}” (en_US)` })).toBeVisible();
  await expect(page.locator(".edit-rules")).toContainText("once in 24 hours");
  await expect(form.locator('input[name="name"]')).toHaveValue(name);
  await expect(form.locator('input[name="name"]')).toHaveAttribute("readonly", "");
  await expect(form.locator('textarea[name="body"]')).toHaveValue("Hi {{1}}, your order is ready for pickup.");
  await form.locator('textarea[name="body"]').fill("Hi {{1}}, your order is ready: come by any time.");
  await expect(page.locator(".wa-body")).toHaveText("Hi Ana, your order is ready: come by any time.");
  await page.getByRole("button", { name: "Submit the edit for review" }).click();
  await expect(page.getByText(`“${name}” was edited and is waiting for Meta's review.`)).toBeVisible();
  await expect(row.locator("[data-status]")).toHaveText("PENDING");
  // Meta holds the new content.
  const after = await (await page.request.get(`${emulatorURL}/_emulator/templates`)).json();
  const edited = after.find((t: { name: string }) => t.name === name);
  expect(JSON.stringify(edited.components)).toContain("come by any time");
  // A second edit of an approved template within 24 hours is refused before Meta is asked.
  await page.request.post(`${emulatorURL}/_emulator/templates/${meta.id}/status`, { data: { status: "APPROVED" } });
  await expect(row.locator("[data-status]")).toHaveText("APPROVED");
  await row.getByRole("button", { name: "Edit" }).click();
  await form.locator('textarea[name="body"]').fill("Hi {{1}}, one more change.");
  await page.getByRole("button", { name: "Submit the edit for review" }).click();
  await expect(form.getByRole("alert")).toContainText("24 hours");
  // That refusal is the 409 the browser logs as a failed resource: expected here, and only it.
  const refused = /409 \(Conflict\) at .*\/api\/v1\/templates\//;
  expect(errors.filter((e) => refused.test(e))).toHaveLength(1);
  errors.splice(0, errors.length, ...errors.filter((e) => !refused.test(e)));
});
