// The daemon in this process, a client on 127.0.0.1 (no discovery): cancelling a job that
// runs on the node stops it there; the shutdown grace period expiring gives the running job
// back to its client instead of waiting for it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
// The built daemon (npm run build; npm test builds first): its workers are processes that run dist/.
import { Daemon } from '../dist/daemon/daemon.js';
import { JobCancelledError, Server, ServerClosedError } from '../src/index.ts';
import { loopbackDaemon } from './helpers/daemon.ts';
import { pollUntil } from './helpers/poll.ts';

const SECRET = 'daemon-test-secret-0123456789abcdef01234';

async function daemonAndClient(): Promise<{ daemon: Daemon; server: Server }> {
  const daemon = new Daemon(loopbackDaemon(SECRET, { name: 'test', id: 'daemon-test' }));
  const port = await daemon.listen();
  const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${port}`], secret: SECRET });
  await pollUntil(() => server.getActiveNodes()[0]?.ncpus === 1, {
    timeoutMs: 20_000,
    what: 'the node and its worker',
  });
  return { daemon, server };
}

function hang(ms: number): number {
  const end = Date.now() + ms;
  while (Date.now() < end);
  return ms;
}

describe('the daemon', { timeout: 60_000 }, () => {
  test('cancelling a job running on a remote node stops it there: the node’s one worker runs the next job', async () => {
    const { daemon, server } = await daemonAndClient();
    try {
      const running = server.submit(hang, [600_000]);
      await pollUntil(() => daemon.jobs === 1, { what: 'the job on the node' });
      const reason = new Error('enough');
      running.cancel(reason);
      await assert.rejects(running, (e: any) => e instanceof JobCancelledError && e.cause === reason);
      // Had the job kept running, the node's only worker would never get to this one.
      assert.equal(await server.submit((x: number) => x + 1, [1]), 2);
    } finally {
      await server.close();
      await daemon.close(0);
    }
  });

  test('the shutdown grace period expires: the running job goes back to its client, close() ends', async () => {
    const { daemon, server } = await daemonAndClient();
    try {
      const running = server.submit(hang, [600_000]);
      // At the node, not only sent (the client counts it in flight as it sends it).
      await pollUntil(() => daemon.jobs === 1, { what: 'the job on the node' });
      const t0 = Date.now();
      await daemon.close(300);
      assert.ok(Date.now() - t0 >= 300, 'waited for the grace period');
      // Given back, not failed: it waits in the client for a node.
      await pollUntil(() => server.getActiveNodes().length === 0, { what: 'the node to leave' });
      assert.equal(running.state, 'pending');
      await server.close();
      await assert.rejects(running, ServerClosedError);
    } finally {
      await server.close();
      await daemon.close(0);
    }
  });
});
