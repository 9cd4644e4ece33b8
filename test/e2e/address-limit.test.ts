// test/e2e/address-limit.test.ts: the spool opens under an address-space limit (ulimit -v,
// systemd's LimitAS=) that node itself runs under, 8 GB here, below the 16 GB map the
// spool takes when there is no limit (spool/store.ts): mapping that much there would
// kill the process with SIGSEGV, no sentence, no exit code.
import { afterEach, describe, expect, it } from 'vitest';
import { Instance, runProgram, BIN } from '../helpers/postern.js';

describe('the spool under ulimit -v', () => {
  let p: Instance | undefined;
  afterEach(async () => {
    await p?.cleanup();
    p = undefined;
  });

  it('postern -bp and -bpc work with an 8 GB address-space limit', async () => {
    p = new Instance([1]);
    const limited = (cmd: string) => runProgram('/bin/sh', ['-c', `ulimit -v 8000000 && exec ${cmd}`]);
    const plain = await limited(`"${process.execPath}" -e "process.exit(0)"`);
    expect(plain.code, 'node itself under the limit').toBe(0);
    for (const flag of ['-bp', '-bpc']) {
      const r = await limited(`"${process.execPath}" "${BIN('postern')}" -C "${p.config}" ${flag}`);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
  });
});
