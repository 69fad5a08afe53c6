import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { LifeboatError } from '../src/errors.js';

/** What every Lifeboat activity returns: its value and the attempt that produced it (for the timeline). */
export interface Reported<T> {
  value: T;
  attempt: number;
}

/**
 * Input and data errors become non-retryable failures of the same type name, with the hint in the
 * message; anything else stays retryable (network, locks, a killed process). A step that stopped
 * because its run was cancelled reports the cancellation, whatever error the stop caused.
 */
export function reportingFailures<I, O>(step: (input: I) => O | Promise<O>): (input: I) => Promise<Reported<O>> {
  return async (input: I) => {
    try {
      const value = await step(input);
      return { value, attempt: Context.current().info.attempt };
    } catch (error) {
      const { cancellationSignal } = Context.current();
      if (cancellationSignal.aborted) throw cancellationSignal.reason;
      if (error instanceof LifeboatError) {
        throw ApplicationFailure.create({ type: error.type, message: error.message, nonRetryable: true });
      }
      throw error;
    }
  };
}
