import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createLogger } from '../src/log.ts';

test('the JSON log format keeps an error’s name, message, stack and cause', () => {
  const lines: string[] = [];
  const cause = new RangeError('deeper');
  const error = new TypeError('it broke', { cause });
  createLogger({ write: (l) => lines.push(l), format: 'json' }).error('job failed', { error });
  const line = JSON.parse(lines[0]!);
  assert.equal(line.msg, 'job failed');
  assert.equal(line.error.name, 'TypeError');
  assert.equal(line.error.message, 'it broke');
  assert.equal(line.error.stack, error.stack);
  assert.match(line.error.stack, /log\.test\.ts/);
  assert.equal(line.error.cause.message, 'deeper');
  assert.equal(line.error.cause.stack, cause.stack);
});
