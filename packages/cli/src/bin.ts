#!/usr/bin/env node
import { processIo } from './cli/io.js';
import { main } from './cli/program.js';
import { demoCommand } from './demo/demo.js';
import { runCommand } from './run/run.js';

const code = await main(process.argv.slice(2), processIo, {
  run: (opts, io) => runCommand(opts, io),
  demo: (opts, io) => demoCommand(opts, io),
  interrupts: () => {
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    process.once('SIGTERM', () => stop.abort());
    return stop.signal;
  },
});
process.exitCode = code;
