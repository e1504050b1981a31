import { createServer, Server } from "node:http";
import { generateKeyPairSync, KeyObject, sign } from "node:crypto";
import { test, expect, hydrated, stubGoogle } from "./fixtures";

// Google sign-in in the browser: Google's script is the fixtures' stub, and Google's token keys
// are served here at GOOGLE_JWKS_URL (playwright.config.ts), so the server verifies real RS256
// ID tokens exactly as it verifies Google's.
const clientId = process.env.E2E_GOOGLE_CLIENT_ID!;
const jwksPort = Number(process.env.E2E_GOOGLE_JWKS_PORT);

const google = generateKeyPairSync("rsa", { modulusLength: 2048 });
const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 });
const kid = "e2e-google-key";
let jwks: Server;

test.beforeAll(async () => {
  const jwk = { ...google.publicKey.export({ format: "jwk" }), kid, alg: "RS256", use: "sig" };
  jwks = createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    // Fresh keys each run: the server must not keep an earlier run's.
    res.setHeader("cache-control", "no-store");
    res.end(JSON.stringify({ keys: [jwk] }));
  });
  await new Promise<void>((resolve) => jwks.listen(jwksPort, "127.0.0.1", resolve));
});

test.afterAll(async () => {
  await new Promise((resolve) => jwks.close(resolve));
});

/** An ID token as Google issues it, signed with `key`. */
function idToken(key: KeyObject, claims: Record<string, unknown>) {
  const now = Math.floor(Date.now() / 1000);
  const part = (v: object) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const head = part({ alg: "RS256", kid, typ: "JWT" });
  const body = part({
    iss: "https://accounts.google.com", aud: clientId, azp: clientId, sub: "109876543210987654321",
    email: "gina.google@example.com", email_verified: true, name: "Gina Google",
    iat: now, exp: now + 600, ...claims,
  });
  const signature = sign("sha256", Buffer.from(`${head}.${body}`), key).toString("base64url");
  return `${head}.${body}.${signature}`;
}

test("Google's button signs in with a verified ID token and shows why a bad one is refused", async ({ page }) => {
  await stubGoogle(page);
  await page.goto("/login");
  await hydrated(page);
  // The button Google's script draws, configured with our client id.
  const button = page.getByRole("button", { name: "Continue with Google" });
  await expect(button).toBeVisible();
  expect(await page.evaluate(() => (window as any).__gsiConfig.client_id)).toBe(clientId);
  await expect(button).toHaveAttribute("data-theme", "outline");

  // A token signed by someone else's key: refused, the reason shown, still on the page.
  await page.evaluate((t) => { (window as any).__gsiCredential = t; }, idToken(stranger.privateKey, {}));
  await button.click();
  await expect(page.getByRole("alert")).toHaveText("Sign-in failed: the ID token's signature does not match");
  await expect(page).toHaveURL(/\/login$/);

  // An unverified e-mail address: refused as well.
  await page.evaluate((t) => { (window as any).__gsiCredential = t; },
    idToken(google.privateKey, { email_verified: false }));
  await button.click();
  await expect(page.getByRole("alert"))
    .toHaveText("Sign-in failed: the account's e-mail address is not verified");
  await expect(page).toHaveURL(/\/login$/);

  // Google's token: signed in, into the inbox, as the token's person.
  await page.evaluate((t) => { (window as any).__gsiCredential = t; }, idToken(google.privateKey, {}));
  await button.click();
  await expect(page).toHaveURL(/\/inbox$/);
  const session = await (await page.request.get("/auth/session")).json();
  expect(session.user.email).toBe("gina.google@example.com");
  expect(session.user.name).toBe("Gina Google");
});
