import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { newProjectId } from '../../test/helpers/e2e-project.js';
import { TestNatsServer } from '../../test/helpers/nats-server.js';
import { PrivatePostgres } from '../../test/helpers/private-postgres.js';
import { PrivateRedis } from '../../test/helpers/private-redis.js';
import { CLI, ManagedProcess, runCli } from '../../test/helpers/service-process.js';
import { makeSelfSignedCert, type SelfSignedCert } from '../../test/helpers/tls-cert.js';
import type { Check } from '../invariants.js';
import { expectThat, type Scenario, type ScenarioResult } from '../scenario.js';
import { World } from '../world.js';

const execFileAsync = promisify(execFile);

/** A refused start must end by itself within this (generous: a battery, not a unit test). */
const REFUSED_WITHIN_S = 15;
/** Past this the refused start is killed (a liveness bound: it then fails its check). */
const KILL_AFTER_MS = 40_000;

/**
 * A password made per run, each server its own: a random part, then every character a URL
 * allows unescaped in a password (a comma among them) but the quotes (a redis.conf line
 * takes the password as it is), then characters it must escape. URLs carry the first ones
 * as a user types them, and only the others escaped.
 */
const password = (what: string) => `${what}-${randomBytes(9).toString('base64url')}!$&()*+,;=:%@/?#`;
/** The password as a user writes it in a URL: as it is, but what a URL cannot hold there. */
const inUrl = (secret: string) => secret.replace(/[%@/?#]/g, (c) => encodeURIComponent(c));

interface Refusal {
  server: 'PostgreSQL' | 'Redis' | 'NATS';
  what: string;
  env: Record<string, string>;
}

interface RefusedRun {
  refusal: Refusal;
  seconds: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** `orchestrator start` expected to be refused: how long until it exited by itself (or was killed), and what it said. */
async function refusedStart(env: Record<string, string>, refusal: Refusal, name: string, outputs: string[]): Promise<RefusedRun> {
  const t0 = Date.now();
  const p = ManagedProcess.start(name, CLI, ['start'], { ...env, INSTANCE_ID: name, ...refusal.env });
  const timer = setTimeout(() => void p.stop('SIGKILL'), KILL_AFTER_MS);
  try {
    const exit = await p.exited;
    return { refusal, seconds: (Date.now() - t0) / 1000, ...exit, stderr: p.stderr };
  } finally {
    clearTimeout(timer);
    outputs.push(p.stdout, p.stderr);
  }
}

/** The secrets as they may be printed: as given, as written in the URLs, as URL and encodeURIComponent escape them, and their random part alone (a partial leak). */
function secretForms(secrets: readonly string[]): string[] {
  const whatwg = (s: string) => {
    const u = new URL('x://h');
    u.password = s;
    return u.password;
  };
  return [...new Set(secrets.flatMap((s) => [s, inUrl(s), whatwg(s), encodeURIComponent(s), s.slice(0, s.indexOf('!'))]))];
}

/**
 * Scenario 12: authentication and TLS on private servers. PostgreSQL with a password
 * (scram-sha-256) and TLS only (`hostssl`, a self-signed certificate made by openssl for
 * this run), Redis with an ACL user (the default user off) on a TLS-only port, nats-server
 * with user and password and TLS required. (1) With the right credentials and the
 * certificate as CA (DATABASE_URL `sslmode=verify-full&sslrootcert`, rediss:// with
 * REDIS_TLS_CA_FILE, NATS_USER/NATS_PASSWORD with NATS_TLS_CA_FILE), a project completes.
 * (2) For each server, a wrong password, no credentials and no TLS each make `orchestrator
 * start` exit non-zero by itself within REFUSED_WITHIN_S, with a message naming the server.
 * (3) No password (the right ones and the wrong one; as given, as written in a URL,
 * escaped, or its random part alone) appears in any output of any run, with the URLs
 * written as a user types them (`, ; = & …` unescaped in the password): the service's (at debug level), the refused starts', and
 * `orchestrator config` / `config --json`. Figure: the slowest refused start.
 */
export function authTls(): Scenario {
  return {
    id: 'auth-tls',
    title: 'Authentication and TLS on private servers',
    async run(log): Promise<ScenarioResult> {
      const secrets = { postgres: password('pg'), redis: password('redis'), nats: password('nats'), wrong: password('wrong') };
      const cert: SelfSignedCert = await makeSelfSignedCert();
      let postgres: PrivatePostgres | undefined;
      let redis: PrivateRedis | undefined;
      let nats: TestNatsServer | undefined;
      let world: World | undefined;
      try {
        postgres = await PrivatePostgres.start({ password: secrets.postgres, tls: cert });
        // TLS when this redis-server is built with it (BUILD_TLS); otherwise the ACL user alone, and the row says so.
        let redisTls = '';
        try {
          redis = await PrivateRedis.start({ user: { name: 'orchestrator', password: secrets.redis }, tls: cert });
          const { stdout } = await execFileAsync('redis-server', ['--version']);
          redisTls = `Redis TLS on a --tls-port (redis-server ${/v=(\S+)/.exec(stdout)?.[1] ?? '?'})`;
        } catch {
          // (its output is not shown: it may quote the config file, password included)
          redis = await PrivateRedis.start({ user: { name: 'orchestrator', password: secrets.redis } });
          redisTls = 'Redis without TLS: this redis-server refused a tls-port (not built with TLS)';
        }
        const withRedisTls = redis.url.startsWith('rediss://');
        nats = await TestNatsServer.start({ user: 'orchestrator', pass: secrets.nats, tls: cert });
        log(`private servers up: PostgreSQL (scram-sha-256, hostssl only), Redis (an ACL user; ${redisTls}), NATS (user/password, --tls)`);
        world = await World.create({
          servers: { postgres, redis, nats },
          env: {
            ...(withRedisTls ? { REDIS_TLS_CA_FILE: cert.certFile } : {}),
            NATS_USER: 'orchestrator',
            NATS_PASSWORD: secrets.nats,
            NATS_TLS_CA_FILE: cert.certFile,
            LOG_LEVEL: 'debug',
          },
        });
        const w = world;
        const outputs: string[] = [];
        // The URLs as a user writes them: the passwords' sub-delims (',' ';' '=' …) unescaped.
        const pgUrl = `postgres://postgres:${inUrl(secrets.postgres)}@127.0.0.1:${postgres.port}/postgres?sslmode=verify-full&sslrootcert=${cert.certFile}`;
        const redisScheme = withRedisTls ? 'rediss' : 'redis';
        const redisUrl = (pw: string | null, scheme = redisScheme) => `${scheme}://${pw === null ? '' : `orchestrator:${inUrl(pw)}@`}127.0.0.1:${redis!.port}`;
        const rightEnv = { DATABASE_URL: pgUrl, REDIS_URL: redisUrl(secrets.redis) };
        const env = { ...w.env, ...rightEnv };

        // (2) Refused starts, one server at a time (the others given right).
        const refusals: Refusal[] = [
          { server: 'PostgreSQL', what: 'wrong password', env: { DATABASE_URL: pgUrl.replace(inUrl(secrets.postgres), () => inUrl(secrets.wrong)) } },
          { server: 'PostgreSQL', what: 'no password', env: { DATABASE_URL: pgUrl.replace(`:${inUrl(secrets.postgres)}@`, '@') } },
          { server: 'PostgreSQL', what: 'no TLS', env: { DATABASE_URL: pgUrl.replace(/\?.*$/, '?sslmode=disable') } },
          { server: 'Redis', what: 'wrong password', env: { REDIS_URL: redisUrl(secrets.wrong) } },
          { server: 'Redis', what: 'no credentials', env: { REDIS_URL: redisUrl(null) } },
          ...(withRedisTls ? [{ server: 'Redis' as const, what: 'no TLS', env: { REDIS_URL: redisUrl(secrets.redis, 'redis'), REDIS_TLS_CA_FILE: '' } }] : []),
          { server: 'NATS', what: 'wrong password', env: { NATS_PASSWORD: secrets.wrong } },
          { server: 'NATS', what: 'no credentials', env: { NATS_USER: '', NATS_PASSWORD: '' } },
          { server: 'NATS', what: 'no CA (the certificate not trusted)', env: { NATS_TLS_CA_FILE: '' } },
        ];
        const refused: RefusedRun[] = [];
        for (const [i, refusal] of refusals.entries()) {
          const r = await refusedStart(env, refusal, `chaos-12-refused-${i + 1}`, outputs);
          refused.push(r);
          const said = r.stderr.split('\n').find((l) => l.startsWith('orchestrator')) ?? r.stderr.trim().split('\n').pop() ?? '';
          log(`${refusal.server}, ${refusal.what}: exit ${r.code ?? r.signal} after ${r.seconds.toFixed(1)} s: ${said.slice(0, 200)}`);
        }

        // (1) The right credentials: a project completes.
        const projectId = newProjectId();
        const orchestrator = await w.startOrchestrator('chaos-12', rightEnv);
        await w.startAgents();
        await w.createProject(projectId);
        await w.projectDone(projectId, 180_000);
        const counts = await w.statusCounts(projectId);
        const total = Object.values(counts).reduce((a, b) => a + b, 0);
        let ssl: { ssl: boolean; n: number }[] = [];
        await w.until(
          async () => {
            ({ rows: ssl } = await w.sql.query<{ ssl: boolean; n: number }>(
              `SELECT s.ssl, count(*)::int AS n FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                WHERE a.application_name LIKE 'orchestrator-chaos-12%' GROUP BY s.ssl`,
            ));
            return ssl.length > 0;
          },
          'a PostgreSQL connection of the service',
          10_000,
        ).catch(() => undefined);
        const config = await runCli(['config'], env, 30_000);
        const configJson = await runCli(['config', '--json'], env, 30_000);
        outputs.push(config.stdout, config.stderr, configJson.stdout, configJson.stderr);
        const invariants = await w.invariants(projectId);
        const running = orchestrator.running;
        await orchestrator.stop('SIGTERM', 15_000);
        outputs.push(orchestrator.stdout, orchestrator.stderr);

        // (3) No secret in any output.
        const forms = secretForms(Object.values(secrets));
        const all = outputs.join('\n');
        const leaked = forms.filter((f) => all.includes(f));
        const startingLogged = orchestrator.stdout.includes('"msg":"starting"') && orchestrator.stdout.includes('***');

        const refusalChecks: Check[] = refused.map((r) =>
          expectThat(
            `${r.refusal.server}, ${r.refusal.what}: start exits non-zero within ${REFUSED_WITHIN_S} s naming ${r.refusal.server}`,
            r.signal === null && r.code !== null && r.code !== 0 && r.seconds < REFUSED_WITHIN_S && r.stderr.includes(`${r.refusal.server} at `),
            `exit ${r.code ?? r.signal} after ${r.seconds.toFixed(1)} s; ${r.stderr.trim().split('\n')[0]?.slice(0, 300) ?? ''}`,
          ),
        );
        // A login refused is said to be one (check the credentials), not a server to start.
        const logins = refused.filter((r) => /password|credentials/.test(r.refusal.what));
        const misread = logins.filter((r) => !r.stderr.includes('refused the connection') || r.stderr.includes('docker compose'));
        refusalChecks.push(
          expectThat(
            'a refused login is reported as refused, naming the settings to check, without "start it"',
            misread.length === 0,
            misread.length ? misread.map((r) => `${r.refusal.server} ${r.refusal.what}: ${r.stderr.trim().split('\n')[0]?.slice(0, 200)}`).join(' | ') : `${logins.length} refused logins, each "refused the connection; check the credentials and TLS settings (…)"`,
          ),
        );
        const slowest = Math.max(...refused.map((r) => r.seconds));
        return {
          did: `a ${total}-task project over TLS with credentials on all three servers (${redisTls}); ${refused.length} refused starts (wrong password, none, no TLS or CA, per server); passwords with , ; = & … unescaped in the URLs`,
          checks: [
            expectThat('the service kept running with the right credentials', running, running ? 'running' : orchestrator.describe().slice(-500)),
            expectThat('project completed', (await w.projectState(projectId)) === 'completed', JSON.stringify(counts)),
            expectThat(
              'its PostgreSQL connections use TLS',
              ssl.length > 0 && ssl.every((r) => r.ssl),
              ssl.map((r) => `${r.n} ${r.ssl ? 'TLS' : 'plain'}`).join(', ') || 'no connection of the service seen',
            ),
            ...refusalChecks,
            expectThat(
              'no secret in any output',
              leaked.length === 0 && startingLogged,
              leaked.length
                ? `${leaked.length} of ${forms.length} secret forms printed`
                : `${forms.length} secret forms searched in ${outputs.length} outputs (${Math.round(all.length / 1024)} KiB), the config logged redacted: ${startingLogged}`,
            ),
            ...invariants,
          ],
          figure: { label: 'slowest refused start', value: slowest, unit: 's' },
        };
      } finally {
        await world?.close().catch(() => undefined);
        await nats?.dispose().catch(() => undefined);
        await redis?.stop().catch(() => undefined);
        await postgres?.dispose().catch(() => undefined);
        await cert.dispose();
      }
    },
  };
}
