/**
 * The two ways the fault tests kill a server mid-way (SIGKILL), round after
 * round on one DATA_DIR: under durable load at a random moment, or a few
 * milliseconds after a log line shows the work to cut short has begun.
 */
import { postIdsUntil } from './http-client.js';
import type { useServers } from './server-process.js';
import { waitFor } from './wait.js';

type Servers = ReturnType<typeof useServers>;

/** Starts a server, posts ids until a random moment within `maxMs`, kills it; resolves to the ids answered 201. */
export async function killUnderLoad(servers: Servers, env: Record<string, string>, round: number, maxMs: number, inFlight: number): Promise<string[]> {
  const server = await servers.start(env);
  let dead = false;
  const load = postIdsUntil(server.url, round, () => dead, inFlight);
  await new Promise((resolve) => setTimeout(resolve, 20 + Math.floor(Math.random() * maxMs)));
  dead = true;
  server.child.kill('SIGKILL');
  const acked = await load;
  await server.exited;
  return acked;
}

/** Runs a server, waits for its first `msg` log line, then kills it within `maxDelayMs`. */
export async function killAfterLogLine(servers: Servers, env: Record<string, string>, msg: string, maxDelayMs: number): Promise<void> {
  const server = servers.run({ ...env, PORT: '0', HOST: '127.0.0.1' });
  await waitFor(() => server.logLines().some((line) => line.msg === msg), `the first '${msg}'`, 30_000);
  await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * maxDelayMs)));
  server.child.kill('SIGKILL');
  await server.exited;
}
