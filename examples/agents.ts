/**
 * The agents as their own process: one NATS worker per agent of the default task-type
 * catalogue, answering every task with a simulated output and cost. Run it next to
 * `orchestrator start`, with the same NATS_URL and NATS_SUBJECT_PREFIX:
 *
 *   npx tsx examples/agents.ts
 *
 * AGENT_DURATION_MS (default 300) sets the simulated work time; AGENTS (comma-separated
 * names, default all) runs only those: one process per agent, each logging in as its own
 * NATS user (deploy/nats: NATS_USER=<agent>, NATS_INBOX_PREFIX=_INBOX.<agent>). SIGTERM or
 * Ctrl-C lets the running tasks finish, publishes their results, then exits 0.
 */
import {
  TaskTypeCatalog,
  connectNats,
  createAgentWorker,
  createLogger,
  loadConfig,
  type AgentTaskHandler,
  type AgentWorker,
} from '../src/index.js';
// The demo's simulated outputs (the README's data contract) and costs; not public API.
import { SimulatedAgents } from '../src/demo/simulated-agents.js';

const config = loadConfig(process.env);
const logger = createLogger({ level: config.logLevel });
// artwork: a script, SVG keyframes, a storyboard sheet and an animated preview the review console shows.
const simulated = new SimulatedAgents(new TaskTypeCatalog(), { artwork: true });
const durationMs = Number(process.env.AGENT_DURATION_MS ?? 300);

// An agent is this function: receive a task, do the work, return its output and cost.
// A thrown error becomes a `failed` result (the orchestrator retries with back-off).
const handle: AgentTaskHandler = async (task, { heartbeat, signal }) => {
  logger.info({ taskId: task.taskId, taskType: task.taskType, attempt: task.attempt }, 'task received');
  await sleep(durationMs * (0.5 + Math.random()), signal); // the "work"
  await heartbeat(); // long tasks call this now and then (the worker also beats on its own)
  const { output, actualCost } = simulated.run(task); // the data contract's output, a cost near the estimate
  return { output, actualCost };
};

const only = (process.env.AGENTS ?? '').split(',').map((a) => a.trim()).filter((a) => a !== '');
const unknown = only.filter((a) => !simulated.agents().includes(a));
if (unknown.length > 0) {
  process.stderr.write(`AGENTS names no agent of the catalogue: ${unknown.join(', ')} (they are ${simulated.agents().join(', ')})\n`);
  process.exit(2);
}
const agents = only.length > 0 ? only : simulated.agents();

const connection = await connectNats({ ...config.nats, name: `agents-${process.pid}` }, logger);
const workers: AgentWorker[] = [];
for (const agent of agents) {
  workers.push(
    await createAgentWorker({
      connection,
      agent,
      handle,
      subjectPrefix: config.nats.subjectPrefix,
      concurrency: 4,
      heartbeatMs: 5_000,
      logger,
    }),
  );
}
process.stdout.write(`agents ready: ${workers.map((w) => w.agent).join(', ')} (NATS prefix ${config.nats.subjectPrefix})\n`);

let stopping = false;
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping the agents');
  await Promise.all(workers.map((w) => w.stop())); // running tasks finish, results are published
  await connection.drain();
  process.stdout.write('agents stopped\n');
  process.exit(0);
}
process.once('SIGTERM', (s) => void shutdown(s));
process.once('SIGINT', (s) => void shutdown(s));

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), reject(signal.reason as Error)), { once: true });
  });
}
