import { describe, expect, it } from 'vitest';
import { ConfigError, KEY_DOCS } from '../config/index.js';
import { VERSION } from '../version.js';
import { CliError } from './exit-codes.js';
import { memoryIo } from './io.js';
import { main, type CommandRunners } from './program.js';

const idle: CommandRunners = { run: async () => 0, demo: async () => 0 };

async function cli(argv: string[], runners: CommandRunners = idle) {
  const io = memoryIo();
  const code = await main(argv, io, runners);
  return { code, stdout: io.stdout(), stderr: io.stderr() };
}

describe('flowlb command line', () => {
  it('--help describes the tool, its commands, examples and exit codes', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^Usage: flowlb \[options\] \[command\]\n\nflowlb: a UDP load balancer with an XDP fast path\./);
    for (const cmd of ['run', 'flows', 'stats', 'backends', 'detach', 'check', 'demo', 'help']) expect(r.stdout).toMatch(new RegExp(`^ {2}${cmd} `, 'm'));
    expect(r.stdout).toContain('\nExamples:\n  $ flowlb demo ');
    expect(r.stdout).toContain(
      '\nExit codes:\n  0  success\n  1  runtime failure (the balancer stopped on an error, a pinned map could not be read)\n' +
        '  2  usage or configuration error (unknown option, invalid config or mappings,\n     unusable --mapper module)\n' +
        '  3  the machine cannot do it: missing privilege (root, or CAP_BPF and CAP_NET_ADMIN),\n' +
        '     no bpffs, a configured interface or address that does not exist, a failed check\n',
    );
    // Nothing wider than a wide terminal.
    for (const line of r.stdout.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });

  it('-V prints the version', async () => {
    expect(await cli(['-V'])).toEqual({ code: 0, stdout: `${VERSION}\n`, stderr: '' });
  });

  it.each(['run', 'flows', 'stats', 'backends', 'detach', 'check', 'demo'])('%s --help has a description, examples and exit codes', async (cmd) => {
    const r = await cli([cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: flowlb ${cmd} \\[options\\]\\n\\n\\S`));
    expect(r.stdout).toContain('\nExamples:\n');
    expect(r.stdout).toContain('\nExit codes:\n  0  ');
    for (const line of r.stdout.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });

  it('run --help lists every config key and says unknown keys are errors', async () => {
    const r = await cli(['help', 'run']);
    expect(r.code).toBe(0);
    for (const d of KEY_DOCS) expect(r.stdout).toMatch(new RegExp(`^ {2}${d.key.replace('.', '\\.')}( \\[original\\])? {2}\\(default: `, 'm'));
    expect(r.stdout).toContain('Unknown keys are errors');
    expect(r.stdout).toContain('SIGHUP            reload the mappings');
  });

  it('usage errors exit 2 with a pointer to --help', async () => {
    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^Usage: flowlb/);
    expect(await cli(['frobnicate'])).toEqual({ code: 2, stdout: '', stderr: "error: unknown command 'frobnicate'\n(add --help for usage)\n" });
    expect(await cli(['run'])).toEqual({
      code: 2,
      stdout: '',
      stderr: "error: required option '-c, --config <file>' not specified\n(add --help for usage)\n",
    });
    expect((await cli(['flows', '--jsn'])).stderr).toBe("error: unknown option '--jsn'\n(Did you mean --json?)\n(add --help for usage)\n");
    expect((await cli(['check', 'extra'])).code).toBe(2);
  });

  it('maps what a command throws to its exit code', async () => {
    const throwing = (e: unknown): CommandRunners => ({ ...idle, run: async () => Promise.reject(e) });
    const args = ['run', '-c', 'x.yaml', '--mapper', 'm.mjs'];
    expect(await cli(args, throwing(new ConfigError([{ file: 'x.yaml', line: 1, col: 7, key: 'port', message: 'expected an integer from 1 to 65535, got 0' }])))).toEqual({
      code: 2,
      stdout: '',
      stderr: 'flowlb: x.yaml:1:7: port: expected an integer from 1 to 65535, got 0\n',
    });
    expect(await cli(args, throwing(new CliError('no bpffs', 3)))).toEqual({ code: 3, stdout: '', stderr: 'flowlb: no bpffs\n' });
    expect(await cli(args, throwing(new Error('boom')))).toEqual({ code: 1, stdout: '', stderr: 'flowlb: boom\n' });
    expect((await cli(args, { ...idle, run: async () => 0 })).code).toBe(0);
  });

  it('passes the run options through', async () => {
    let seen: unknown;
    await cli(['run', '--config', 'c.yaml', '-m', 'm.yaml', '--detach-on-exit'], { ...idle, run: async (o) => ((seen = o), 0) });
    expect(seen).toEqual({ config: 'c.yaml', mappings: 'm.yaml', detachOnExit: true });
  });

  it('check with a missing config file is a usage error', async () => {
    expect(await cli(['check', '--config', '/nonexistent/c.yaml'])).toEqual({
      code: 2,
      stdout: '',
      stderr: 'flowlb: /nonexistent/c.yaml: cannot read the config: no such file\n',
    });
  });
});
