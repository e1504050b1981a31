import { statSync } from "node:fs";
import { test, expect, hydrated, devSignIn } from "./fixtures";

test("the privacy page shows the owner's policy", async ({ page, errors }) => {
  await page.goto("/privacy");
  await expect(page.getByRole("heading", { level: 1, name: "Privacy Policy" })).toBeVisible();
  await expect(page.getByText("Last updated: April 1, 2026")).toBeVisible();
  await expect(page.getByRole("heading", { name: "8. Cookies" })).toBeVisible();
  await expect(page.getByText("We do not use third-party advertising cookies.")).toBeVisible();
  await expect(page.getByText("Email: service@setiamanggalaabadi.com")).toBeVisible();
  await expect(page).toHaveTitle(/Privacy Policy/);
});

test("the release build hydrates: a click changes the page without a reload", async ({ page, errors }) => {
  await page.goto("/privacy");
  await hydrated(page);
  let navigations = 0;
  page.on("framenavigated", () => navigations++);
  const html = page.locator("html");
  const before = await html.getAttribute("data-theme");
  await page.getByRole("button", { name: "Switch light or dark theme" }).click();
  await expect(html).toHaveAttribute("data-theme", before === "dark" ? "light" : "dark");
  expect(navigations, "no reload").toBe(0);
  // The choice is UI state in local storage and survives a reload.
  const chosen = await html.getAttribute("data-theme");
  await page.reload();
  await hydrated(page);
  await expect(html).toHaveAttribute("data-theme", chosen!);
});

test("visitors are sent to sign in, and dev sign-in lands in the inbox shell", async ({ page, errors }) => {
  await page.goto("/");
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByText("Development sign-in")).toBeVisible();
  await devSignIn(page, "agent.ana@example.com");
  await expect(page.getByRole("heading", { name: "Inbox" })).toBeVisible();
  await expect(page.locator(".dev-banner")).toContainText("Development sign-in is enabled");
  await hydrated(page);
  const toggle = page.getByRole("button", { name: "Toggle the sidebar" });
  await toggle.click();
  await expect(page.locator(".app-shell")).toHaveClass(/collapsed/);
  await expect(toggle).toHaveAttribute("aria-pressed", "true");

  // Only the one session cookie, HttpOnly.
  const cookies = await page.context().cookies();
  expect(cookies.map((c) => c.name)).toEqual(["qontak_session"]);
  expect(cookies[0].httpOnly).toBe(true);

  await page.getByRole("button", { name: "Sign out" }).click();
  await expect(page).toHaveURL(/\/login$/);
  await page.goto("/inbox");
  await expect(page).toHaveURL(/\/login$/);
});

test("an unknown page answers 404 with a page", async ({ page }) => {
  const response = await page.goto("/does-not-exist");
  expect(response?.status()).toBe(404);
  await expect(page.getByRole("heading", { name: "Page not found" })).toBeVisible();
});

test("the client's files are served compressed ahead of time, at the highest levels", async ({ request }) => {
  for (const [encoding, suffix] of [["br", ".br"], ["gzip", ".gz"]]) {
    for (const file of ["qontak.wasm", "qontak.js", "qontak.css"]) {
      const response = await request.get(`/pkg/${file}`, { headers: { "Accept-Encoding": encoding } });
      expect(response.status()).toBe(200);
      const headers = response.headers();
      expect(headers["content-encoding"], file).toBe(encoding);
      expect(headers["vary"], file).toContain("accept-encoding");
      // The file the build compressed (brotli 11, gzip -9), not the compression layer's
      // default level on the fly.
      expect(Number(headers["content-length"]), file)
        .toBe(statSync(`../target/site/pkg/${file}${suffix}`).size);
    }
  }
  const wasm = await request.get("/pkg/qontak.wasm", { headers: { "Accept-Encoding": "br" } });
  expect(wasm.headers()["content-type"]).toBe("application/wasm");
});
