#!/usr/bin/env node
// Entry of the `lifeboat` command: the sources are TypeScript, run through tsx (no build step).
import { register } from 'tsx/esm/api';

// The AWS SDK warns on every start that future releases need Node 22; Lifeboat pins its SDK
// version in the lockfile, so the warning says nothing an operator can act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
const { main } = await import('../src/cli.ts');
const code = await main(process.argv);
// gRPC channels and timers may keep the loop alive after a command is done.
process.exit(code);
