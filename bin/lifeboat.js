#!/usr/bin/env node
// Entry of the `lifeboat` command: the sources are TypeScript, run through tsx (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
const code = await main(process.argv);
// gRPC channels and timers may keep the loop alive after a command is done.
process.exit(code);
