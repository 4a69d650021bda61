import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { canRunPrivileged } from './privileges.js';

const fixtureConfig = fileURLToPath(new URL('./test-support/fixtures/vitest.config.ts', import.meta.url));
const vitestBin = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');

interface JsonReport {
  testResults: { assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
}

/** Runs the fixture suite in a child vitest with the given environment and returns each test's status. */
function runFixture(env: Record<string, string | undefined>): Promise<{ code: number | null; results: Record<string, string>; messages: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tk-vitest-'));
  const out = join(dir, 'report.json');
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('VITEST') && v !== undefined) childEnv[k] = v;
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k];
    else childEnv[k] = v;
  }
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [vitestBin, 'run', '--config', fixtureConfig, '--reporter=json', '--outputFile', out],
      { env: childEnv, timeout: 60_000 },
      (err, _stdout, stderr) => {
        try {
          const report = JSON.parse(readFileSync(out, 'utf8')) as JsonReport;
          const results: Record<string, string> = {};
          let messages = '';
          for (const file of report.testResults) {
            for (const a of file.assertionResults) {
              results[a.fullName] = a.status;
              messages += a.failureMessages.join('\n');
            }
          }
          const code = err ? ((err as { code?: number }).code ?? null) : 0;
          resolve({ code: typeof code === 'number' ? code : null, results, messages });
        } catch (e) {
          reject(new Error(`fixture run produced no report: ${String(e)}\n${stderr}`));
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  });
}

describe('privilege gate', () => {
  it('probes the machine once and answers with a reason when it cannot run', () => {
    const check = canRunPrivileged();
    expect(typeof check.ok).toBe('boolean');
    if (!check.ok) expect(check.reason).toBeTruthy();
    if (process.getuid?.() === 0 && check.ok) expect(check.reason).toBeUndefined();
    expect(canRunPrivileged()).toEqual(check);
  });

  it('turns an impossible privileged block into a failure under CI and a skip otherwise', async () => {
    const [ci, dev] = await Promise.all([
      runFixture({ CI: 'true', FLOWLB_TESTKIT_UNPRIVILEGED: 'simulated' }),
      runFixture({ CI: undefined, FLOWLB_TESTKIT_UNPRIVILEGED: 'simulated' }),
    ]);
    expect(ci.code).not.toBe(0);
    expect(ci.results).toEqual({
      'needs root has the privileges it needs': 'failed',
      'single privileged test': 'failed',
      'ordinary test': 'passed',
    });
    expect(ci.messages).toContain('FLOWLB_TESTKIT_UNPRIVILEGED=simulated');

    expect(dev.code).toBe(0);
    expect(dev.results).toEqual({
      'needs root [skipped: FLOWLB_TESTKIT_UNPRIVILEGED=simulated] runs': 'skipped',
      'single privileged test [skipped: FLOWLB_TESTKIT_UNPRIVILEGED=simulated]': 'skipped',
      'ordinary test': 'passed',
    });
  });

  it.runIf(canRunPrivileged().ok)('runs privileged blocks when the machine allows it', async () => {
    const r = await runFixture({ CI: 'true', FLOWLB_TESTKIT_UNPRIVILEGED: undefined });
    expect(r.code).toBe(0);
    expect(r.results).toEqual({ 'needs root runs': 'passed', 'single privileged test': 'passed', 'ordinary test': 'passed' });
  });
});
