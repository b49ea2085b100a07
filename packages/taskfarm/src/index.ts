/**
 * taskfarm for applications: the seed's Master, WorkQueue and MultiWorkQueue (rank 0), its Slave as
 * Worker (every other rank), and rank()/size() to tell which part this process plays, as MPI's
 * COMM_WORLD.Get_rank() and Get_size() do under mpiexec.
 */
export * from '@taskfarm/coordinator';
export * from '@taskfarm/worker';
export { PROTOCOL_VERSION, PayloadError, ProtocolError, type Key, type WireError } from '@taskfarm/protocol';
export { rank, size, role } from './world.ts';
export { generateCurveKeyPair, curvePublicKey, formatSecretKeyFile, formatPublicKeyFile, parseAllowList, type CurveKeyPair } from '@taskfarm/protocol';
