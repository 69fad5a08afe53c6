#!/usr/bin/env node
// Entry of the `lifeboat` command. The sources are TypeScript: a command runs the prebuilt bundle
// (dist/cli/, see cli-bundle.js) when it is current, else the sources through tsx.
//
// PostgreSQL reads restore_command's exit status 1 as "not in the archive" and may end recovery
// there. So the handler below comes before anything is loaded, and the modules come after it
// (dynamic imports): whatever fails before wal-fetch can answer, it exits 126 and stops recovery.
process.on('uncaughtException', (error) => {
  const fetching = process.argv.includes('wal-fetch');
  process.stderr.write(`lifeboat${fetching ? ' wal-fetch' : ''}: ${error?.stack ?? error}\n`);
  process.exit(fetching ? 126 : 1);
});

// The AWS SDK warns on every start that future releases need Node 22; Lifeboat pins its SDK
// version in the lockfile, so the warning says nothing an operator can act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

// libuv runs file system calls on a pool of 4 threads by default: a restore of a tree of 100,000
// small files is ~600,000 of them (open, write, chmod, utimes, close), queued behind those four.
// libuv reads this once, when the pool first starts: here, before anything can start it.
if (process.argv.includes('worker')) process.env.UV_THREADPOOL_SIZE ??= '16';

const { pathToFileURL } = await import('node:url');
const { freshCliBundle } = await import('./cli-bundle.js');
const { commandOf } = await import('./command-of.js');
const command = commandOf(process.argv.slice(2));

async function loadCli() {
  // Long-running commands start once; through tsx their stack traces point into the sources.
  // LIFEBOAT_PREBUILT=0 runs the sources for any command.
  const prebuilt = process.env.LIFEBOAT_PREBUILT === '0' || command === 'worker' || command === 'dev' || command === 'serve' ? undefined : freshCliBundle();
  if (prebuilt) {
    try {
      return await import(pathToFileURL(prebuilt).href);
    } catch (error) {
      process.stderr.write(`lifeboat: the prebuilt CLI ${prebuilt} did not load (${error?.message ?? error}); running the sources\n`);
    }
  }
  const { register } = await import('tsx/esm/api');
  register();
  return import('../src/cli.ts');
}

const cli = await loadCli();
const code = await cli.main(process.argv);
// gRPC channels and timers may keep the loop alive after a command is done.
process.exit(code);
