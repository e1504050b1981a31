import { test as base, expect, Page } from "@playwright/test";

/** Fails the test on any page error or console error (a CSP violation, a hydration panic). */
export const test = base.extend<{ errors: string[] }>({
  errors: async ({ page }, use) => {
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`console: ${m.text()} at ${m.location().url}`);
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
