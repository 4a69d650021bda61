import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** JSON lines on stdout with readable level names and ISO times; `debug` lowers the level to every decision. */
export function createLogger(options: { debug: boolean; destination?: DestinationStream }): Logger {
  return pino(
    {
      name: 'flowlb',
      level: options.debug ? 'debug' : 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}
