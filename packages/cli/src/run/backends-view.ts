import type { TargetFlows } from '@flowlb/balancer';
import type { BackendReport, TargetTraffic } from '../mapper/backend-health.js';

/**
 * What `flowlb backends` and /backends show: the mapper's targets with their health (when it reports them), each
 * with its flows and traffic, and the targets that still hold flows although the mappings no longer list them
 * (removed from the file: they drain). With a mapper that reports no targets, every target the balancer has sent
 * flows to.
 */
export function backendsView(
  reported: readonly BackendReport[] | undefined,
  flows: Readonly<Record<string, TargetFlows>> | undefined,
  traffic: ReadonlyMap<string, TargetTraffic> | undefined,
): BackendReport[] {
  const withCounts = (row: BackendReport): BackendReport => {
    const f = flows?.[row.target];
    const t = traffic?.get(row.target);
    return {
      ...row,
      ...(flows ? { flows: f ?? { active: 0, created: 0, refused: 0 } } : {}),
      ...(t ? { traffic: t } : {}),
    };
  };
  const rows = (reported ?? []).map(withCounts);
  const listed = new Set(rows.map((r) => r.target));
  for (const [target, f] of Object.entries(flows ?? {})) {
    if (listed.has(target)) continue;
    if (reported && f.active === 0) continue;
    rows.push(withCounts({ target, names: [], state: reported ? 'draining' : 'unchecked' }));
  }
  return rows;
}
