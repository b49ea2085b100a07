#!/usr/bin/env node
// tsx is registered in-process so the CLI runs straight from its TypeScript sources: no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv.slice(2));
