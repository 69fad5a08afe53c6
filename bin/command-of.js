// Which subcommand an argv names, before commander parses it: bin/lifeboat.js decides from it how
// to load the CLI, and the CLI how a failure must exit (restore_command's statuses are special).

/**
 * The first argument that is neither an option nor the value of --config.
 * @param {string[]} args the arguments after node and the script
 * @returns {string | undefined}
 */
export function commandOf(args) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--config') i += 1;
    else if (!args[i].startsWith('-')) return args[i];
  }
  return undefined;
}
