// Drive a SMART launch in headless Chromium: open the app's page, sign in on the node,
// approve, wait for the app's redirect page to finish (document.title "DONE").
// usage: node smart_browser.cjs <chromium> <profile-dir> <start-url> <username> <password>
// Prints {title, out, url} (out: the app page's #out text) or exits 1 with the reason.
// Adapted from tests/fhir_server/smart/js/smart_browser.cjs; here the app and the node are
// on different origins, and every page the browser passes through is reported on failure.
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
  const seen = [];
  try {
    const page = await browser.newPage();
    page.setDefaultTimeout(30000);
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) seen.push(frame.url());
    });
    page.on("console", (msg) => seen.push(`console.${msg.type()}: ${msg.text()}`));
    try {
      await page.goto(startUrl);
      await page.waitForSelector("#username");
      await page.type("#username", username);
      await page.type("#password", password);
      await Promise.all([page.waitForNavigation(), page.click("#sign-in")]);
      await page.waitForSelector("#allow");
      await Promise.all([page.waitForNavigation(), page.click("#allow")]);
      await page.waitForFunction(() => document.title === "DONE");
    } catch (err) {
      const body = await page.evaluate(() => document.body && document.body.innerText);
      throw new Error(`${err.message}\npages: ${seen.join("\n  ")}\nlast page: ${body}`);
    }
    const out = await page.$eval("#out", (el) => el.textContent);
    const title = await page.title();
    process.stdout.write(JSON.stringify({ title, out, url: page.url() }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
