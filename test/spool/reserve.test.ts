// The reserve file after a power cut: the power-loss harness (test/powerloss, round
// "reserve: after its first write") found the reserve written but never synced, so a cut
// left `reserve` at 0 bytes, and ensure() took any file there for the reserve: no room
// kept. ensure() now syncs it and makes a short one again.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { RESERVE_SIZE, SpaceReserve } from '../../src/spool/reserve.js';

describe('SpaceReserve', () => {
  let dir = '';
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('makes the reserve at its full size', () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-reserve-'));
    expect(new SpaceReserve(dir, RESERVE_SIZE).ensure()).toBe(true);
    expect(statSync(join(dir, 'reserve')).size).toBe(RESERVE_SIZE);
  });

  it('makes again a reserve a power cut left short (0 bytes: written, never synced)', () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-reserve-'));
    writeFileSync(join(dir, 'reserve'), '');
    expect(new SpaceReserve(dir, RESERVE_SIZE).ensure()).toBe(true);
    expect(statSync(join(dir, 'reserve')).size).toBe(RESERVE_SIZE);
  });

  it('keeps a whole reserve as it is', () => {
    dir = mkdtempSync(join(tmpdir(), 'postern-reserve-'));
    const r = new SpaceReserve(dir, RESERVE_SIZE);
    r.ensure();
    const ino = statSync(join(dir, 'reserve')).ino;
    expect(new SpaceReserve(dir, RESERVE_SIZE).ensure()).toBe(true);
    expect(statSync(join(dir, 'reserve')).ino).toBe(ino);
  });
});
