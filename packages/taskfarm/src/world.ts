/**
 * Which part this process plays, from the environment `taskfarm run` / `taskfarm worker` set
 * (TASKFARM_RANK, TASKFARM_SIZE, TASKFARM_ROLE). A script run with plain `node` is rank 0 of size 1.
 */

/** 'coordinator' for rank 0, 'worker' for every other rank. */
export function role(): 'coordinator' | 'worker' {
  return process.env.TASKFARM_ROLE === 'worker' || Number(process.env.TASKFARM_RANK) > 0 ? 'worker' : 'coordinator';
}

/**
 * This process's rank: 0 for the coordinator, 1.. for workers. A worker that joined without a fixed
 * rank (`taskfarm worker` without --rank) reports -1 until it has registered; from then on (inside
 * doWork() for instance) it reports the rank the coordinator gave it.
 */
export function rank(): number {
  const r = process.env.TASKFARM_RANK;
  if (r !== undefined && r !== '') return Number(r);
  return role() === 'worker' ? -1 : 0;
}

/** The number of ranks `taskfarm run -n N` started (N), or 1 outside it. */
export function size(): number {
  const s = Number(process.env.TASKFARM_SIZE);
  return Number.isSafeInteger(s) && s >= 1 ? s : 1;
}
