import type { SlackReply } from './replies.js';

/**
 * POSTs a message to a Slack URL that is itself the credential (a command's response_url, an
 * incoming webhook). Retries what may pass (no answer, 5xx, 429) a few times with backoff; a 4xx
 * is final. Errors name `describe`, never the URL.
 */
export async function postToSlack(url: string, message: SlackReply, describe: string, options: { attempts?: number; timeoutMs?: number; firstDelayMs?: number } = {}): Promise<void> {
  const attempts = options.attempts ?? 4;
  let delay = options.firstDelayMs ?? 1000;
  let last = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json; charset=utf-8' },
        body: JSON.stringify(message),
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
        redirect: 'error',
      });
      const answer = (await response.text().catch(() => '')).slice(0, 200).replace(/\s+/g, ' ').trim();
      if (response.ok) return;
      last = `${describe} answered ${response.status}${answer ? ` "${answer}"` : ''}`;
      if (response.status >= 400 && response.status < 500 && response.status !== 429 && response.status !== 408) throw new FinalRefusal(last);
    } catch (error) {
      if (error instanceof FinalRefusal) throw new Error(error.message);
      // fetch's own message could quote the URL: say what failed in our words.
      last = `${describe} did not answer (${error instanceof Error ? error.name : 'error'})`;
    }
    if (attempt < attempts) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay *= 2;
    }
  }
  throw new Error(`${last}, after ${attempts} attempts`);
}

class FinalRefusal extends Error {}
