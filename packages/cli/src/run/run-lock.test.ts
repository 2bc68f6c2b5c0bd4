import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../test-fixtures.ts';
import { LOCK_FILE, lockRunFolder } from './run-lock.ts';

const lock = (dir: string, owner: object) => writeFileSync(join(dir, LOCK_FILE), JSON.stringify(owner));

describe('lockRunFolder', () => {
  it('holds the folder, refuses a second holder naming the pid, and leaves nothing behind when released', () => {
    const dir = tempDir();
    const release = lockRunFolder(dir, () => {});
    expect(readdirSync(dir)).toEqual([LOCK_FILE]);
    // A live process of this host holds it (the parent of this test, which lives on).
    lock(dir, { pid: process.ppid, host: hostname(), started: 'then' });
    expect(() => lockRunFolder(dir, () => {})).toThrow(
      expect.objectContaining({
        code: 'E_RUN_LOCKED',
        message: expect.stringMatching(`pid ${process.ppid} on`),
      }),
    );
    release();
    // Not ours any more: released, it stays.
    expect(existsSync(join(dir, LOCK_FILE))).toBe(true);
  });

  it('takes over the lock of a process that is gone, or of an earlier process with our own pid (a restarted container)', () => {
    const dir = tempDir();
    const gone = Number(
      spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout,
    );
    for (const pid of [gone, process.pid]) {
      lock(dir, { pid, host: hostname(), started: 'before' });
      const notices: string[] = [];
      const release = lockRunFolder(dir, (m) => notices.push(m));
      expect(notices).toEqual([
        expect.stringMatching(`removed a stale lock of pid ${pid} \\(no longer running\\)`),
      ]);
      release();
      expect(readdirSync(dir)).toEqual([]);
    }
  });

  it("never takes over another host's lock (it cannot tell whether that run lives)", () => {
    const dir = tempDir();
    lock(dir, { pid: 1, host: 'elsewhere', started: 'then' });
    expect(() => lockRunFolder(dir, () => {})).toThrow(
      /pid 1 on elsewhere.*If that run is gone, delete .*lora\.lock/,
    );
  });
});
