// Test support: builders of ClientHellos and protected client Initial datagrams. Built to dist-testing/ for the
// bench only; not in the package's files.
export * from './tls-client-hello.js';
export * from './initial-builder.js';
export * from './rfc-samples.js';
