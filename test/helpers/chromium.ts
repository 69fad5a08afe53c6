import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium (scripts/bootstrap.sh installs it); playwright-core drives it, it downloads no browser. */
export const chromiumPath = process.env.LIFEBOAT_TEST_CHROMIUM ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  // Tests run as root in CI: Chromium's sandbox refuses root, so it runs without (a local, static page).
  return chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}
