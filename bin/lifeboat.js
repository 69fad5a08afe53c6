#!/usr/bin/env node
// Entry of the `lifeboat` command. The sources are TypeScript: a command runs the prebuilt bundle
// (dist/cli/, see cli-bundle.js) when it is current, else the sources through tsx.
import { pathToFileURL } from 'node:url';
import { freshCliBundle } from './cli-bundle.js';

// The AWS SDK warns on every start that future releases need Node 22; Lifeboat pins its SDK
// version in the lockfile, so the warning says nothing an operator can act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** The subcommand: the first argument that is neither an option nor the value of --config. */
function commandOf(args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--config') i += 1;
    else if (!args[i].startsWith('-')) return args[i];
  }
  return undefined;
}

// Long-running commands start once; through tsx their stack traces point into the sources.
// LIFEBOAT_PREBUILT=0 runs the sources for any command.
const command = commandOf(process.argv.slice(2));
const prebuilt = process.env.LIFEBOAT_PREBUILT === '0' || command === 'worker' || command === 'dev' ? undefined : freshCliBundle();
let cli;
if (prebuilt) {
  cli = await import(pathToFileURL(prebuilt).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../src/cli.ts');
}
const code = await cli.main(process.argv);
// gRPC channels and timers may keep the loop alive after a command is done.
process.exit(code);
