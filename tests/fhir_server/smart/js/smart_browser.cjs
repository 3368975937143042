// Drive a SMART launch in headless Chromium: sign in, approve, wait for the app page.
// usage: node smart_browser.cjs <chromium> <profile-dir> <start-url> <username> <password>
const puppeteer = require("puppeteer-core");

async function main() {
  const [chromium, profile, startUrl, username, password] = process.argv.slice(2);
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: false, // the --headless flag below is passed explicitly
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      `--user-data-dir=${profile}`,
    ],
  });
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(30000);
    await page.goto(startUrl);
    await page.waitForSelector("#username");
    await page.type("#username", username);
    await page.type("#password", password);
    await Promise.all([page.waitForNavigation(), page.click("#sign-in")]);
    await page.waitForSelector("#allow");
    await Promise.all([page.waitForNavigation(), page.click("#allow")]);
    await page.waitForFunction(() => document.title === "OK" || document.title === "ERR");
    const out = await page.$eval("#out", (el) => el.textContent);
    const title = await page.title();
    process.stdout.write(JSON.stringify({ title, out }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
