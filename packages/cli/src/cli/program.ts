import { Command, CommanderError, Option } from 'commander';
import { checkCommand } from '../commands/check.js';
import { flowsCommand } from '../commands/flows.js';
import { statsCommand } from '../commands/stats.js';
import { backendsCommand } from '../commands/backends.js';
import { ConfigError } from '../config/index.js';
import { detachCommand } from '../run/detach.js';
import { VERSION } from '../version.js';
import { CliError, EXIT } from './exit-codes.js';
import * as help from './help-text.js';
import type { Io } from './io.js';

export interface CommandRunners {
  run: (
    opts: { config: string; mappings?: string; mapper?: string; detachOnExit?: boolean; worker?: string; workerPinDir?: string },
    io: Io,
  ) => Promise<number>;
  demo: (opts: { userspace?: boolean; keep?: boolean }, io: Io) => Promise<number>;
  /** A signal that fires on Ctrl-C, for `stats --watch`; made on demand so other commands keep the default. */
  interrupts?: () => AbortSignal;
}

function withInstanceOptions(cmd: Command): Command {
  return cmd
    .option('--pin-path <dir>', 'bpffs folder holding the pinned maps')
    .option('--instance <name>', 'instance under the pin root, by its VIP: addr:port')
    .option('-c, --config <file>', "read pin_path from this config");
}

/** The `flowlb` command line. Actions set the exit code; nothing here calls process.exit. */
export function buildProgram(io: Io, runners: CommandRunners, setExit: (code: number) => void): Command {
  const program = new Command('flowlb')
    .description(help.PROGRAM_DESCRIPTION)
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .addHelpText('after', help.PROGRAM_AFTER);

  const sub = (name: string): Command =>
    program
      .command(name)
      .helpOption('-h, --help', 'show help')
      .exitOverride()
      .configureOutput({ writeOut: io.out, writeErr: io.err })
      .showHelpAfterError(`(add --help for usage)`);

  sub('run')
    .summary('run the balancer in the foreground')
    .description(help.RUN_DESCRIPTION)
    .requiredOption('-c, --config <file>', 'config file (YAML, the original flowlb keys plus ours)')
    .option('-m, --mappings <file>', 'DTLS SNI mappings file: use the DTLS SNI mapper')
    .option('--mapper <module>', 'ES module exporting your FlowMapper (or a function making one)')
    .option('--detach-on-exit', 'on stop detach the XDP program and remove every pin, leaving nothing behind')
    // How `flowlb run` starts its workers; not for people.
    .addOption(new Option('--worker <index/count>').hideHelp())
    .addOption(new Option('--worker-pin-dir <dir>').hideHelp())
    .addHelpText('after', help.RUN_AFTER)
    .action(async (opts: { config: string; mappings?: string; mapper?: string; detachOnExit?: boolean; worker?: string; workerPinDir?: string }) => {
      setExit(await runners.run(opts, io));
    });

  withInstanceOptions(sub('flows').summary('list the flows of a running balancer').description(help.FLOWS_DESCRIPTION))
    .option('--json', 'print JSON')
    .addHelpText('after', help.FLOWS_AFTER)
    .action(async (opts: { json?: boolean; pinPath?: string; instance?: string; config?: string }) => {
      setExit(await flowsCommand(opts, io));
    });

  withInstanceOptions(sub('stats').summary('show the counters of a running balancer').description(help.STATS_DESCRIPTION))
    .option('--json', 'print JSON (one object per line with --watch)')
    .addOption(new Option('-w, --watch [seconds]', 'repeat every few seconds (default 2) until interrupted'))
    .option('--count <n>', 'with --watch: stop after n reports')
    .addHelpText('after', help.STATS_AFTER)
    .action(async (opts: { json?: boolean; watch?: boolean | string; count?: string; pinPath?: string; instance?: string; config?: string }) => {
      setExit(await statsCommand(opts, io, opts.watch ? runners.interrupts?.() : undefined));
    });

  withInstanceOptions(sub('backends').summary('show the targets of a running balancer: health, flows and traffic').description(help.BACKENDS_DESCRIPTION))
    .option('--json', 'print JSON (one object per line with --watch)')
    .addOption(new Option('-w, --watch [seconds]', 'repeat every few seconds (default 2) until interrupted'))
    .option('--count <n>', 'with --watch: stop after n reports')
    .addHelpText('after', help.BACKENDS_AFTER)
    .action(async (opts: { json?: boolean; watch?: boolean | string; count?: string; pinPath?: string; instance?: string; config?: string }) => {
      setExit(await backendsCommand(opts, io, opts.watch ? runners.interrupts?.() : undefined));
    });

  withInstanceOptions(sub('detach').summary('detach the XDP program a stopped balancer left attached').description(help.DETACH_DESCRIPTION))
    .option('--json', 'print JSON')
    .option('--force', 'detach even though a running `flowlb run` uses the pin path')
    .addHelpText('after', help.DETACH_AFTER)
    .action(async (opts: { json?: boolean; force?: boolean; pinPath?: string; instance?: string; config?: string }) => {
      setExit(await detachCommand(opts, io));
    });

  sub('check')
    .summary('tell whether this machine can run the XDP datapath')
    .description(help.CHECK_DESCRIPTION)
    .option('-c, --config <file>', 'check for this config (its addresses, interfaces and SNAT ports)')
    .option('-m, --mappings <file>', "check the mappings' targets against the SNAT ports")
    .option('--json', 'print JSON')
    .addHelpText('after', help.CHECK_AFTER)
    .action(async (opts: { config?: string; mappings?: string; json?: boolean }) => {
      setExit(await checkCommand(opts, io));
    });

  sub('demo')
    .summary('route real DTLS and QUIC clients by SNI through a throw-away topology')
    .description(help.DEMO_DESCRIPTION)
    .option('--userspace', 'run on loopback with the userspace datapath even as root')
    .option('--keep', 'leave the topology in place when done (for a look around; remove it with ip netns del)')
    .addHelpText('after', help.DEMO_AFTER)
    .action(async (opts: { userspace?: boolean; keep?: boolean }) => {
      setExit(await runners.demo(opts, io));
    });

  return program;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Parses `argv` (without node and the script), runs the command and returns the exit code. */
export async function main(argv: readonly string[], io: Io, runners: CommandRunners): Promise<number> {
  let code: number = EXIT.OK;
  const program = buildProgram(io, runners, (c) => (code = c));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.OK;
      if (error.code === 'commander.help') return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
      return EXIT.USAGE;
    }
    if (error instanceof ConfigError) {
      io.err(`flowlb: ${error.message}\n`);
      return EXIT.USAGE;
    }
    if (error instanceof CliError) {
      io.err(`flowlb: ${error.message}\n`);
      return error.exitCode;
    }
    io.err(`flowlb: ${errorMessage(error)}\n`);
    return EXIT.FAILURE;
  }
}
