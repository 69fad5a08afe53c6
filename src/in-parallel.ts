/**
 * fn applied to every item with at most `limit` calls running at once; results in the order of
 * items. The first failure rejects (calls already running are left to finish on their own).
 * Repositories answer one small request in milliseconds: a thousand manifests read one at a time
 * from S3 take seconds, a dozen at a time a fraction of that.
 */
export async function mapInParallel<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
