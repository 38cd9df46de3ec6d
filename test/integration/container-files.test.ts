import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { builtinModules } from 'node:module';
import type { AddressInfo } from 'node:net';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/config.js';
import { SETTINGS } from '../../src/config/settings.js';
import { freePort } from '../helpers/private-redis.js';
import { ROOT } from '../helpers/service-process.js';

/**
 * The Dockerfile and docker-compose.yml, checked without a Docker engine: the compose file
 * parses, runs the servers, the orchestrator and the example agents, with environment
 * names of the configuration table (and values it accepts); the Dockerfile has its stages,
 * an unprivileged user, the HEALTHCHECK on /readyz and `orchestrator start` as entry, copies
 * files that exist and are in the build context; what the runtime image runs needs only
 * production dependencies; and the agents example, compiled as the image compiles it,
 * runs under plain node.
 */

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const SETTING_NAMES = new Set(SETTINGS.map((s) => s.env));
/** Names read by something else than the configuration table, and by whom. */
const ELSEWHERE: Record<string, string> = {
  NODE_ENV: 'Node.js and its libraries',
  AGENT_DURATION_MS: 'the agents example (examples/agents.ts)',
};
const known = (name: string) => SETTING_NAMES.has(name) || name in ELSEWHERE;

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  healthcheck?: { disable?: boolean; test?: string[] };
  depends_on?: Record<string, { condition: string }>;
}
const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
}
/** The Dockerfile's instructions (continuations joined, comments dropped), with the index of their stage. */
function dockerfile(): Instruction[] {
  const lines = read('Dockerfile').replace(/\\\r?\n/g, ' ').split('\n');
  const out: Instruction[] = [];
  let stage = -1;
  for (const raw of lines) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [keyword = '', ...rest] = line.split(/\s+/);
    if (keyword.toUpperCase() === 'FROM') stage++;
    out.push({ keyword: keyword.toUpperCase(), args: rest.join(' '), stage });
  }
  return out;
}
const instructions = dockerfile();
const runtimeStage = Math.max(...instructions.map((i) => i.stage));
const inRuntime = (keyword: string) => instructions.filter((i) => i.stage === runtimeStage && i.keyword === keyword);

const scratch = join(ROOT, '.scratch', `image-${randomBytes(4).toString('hex')}`);
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('docker-compose.yml', () => {
  it('runs PostgreSQL, Redis, NATS with JetStream, the orchestrator from the Dockerfile and the example agents', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['agents', 'nats', 'orchestrator', 'postgres', 'redis']);
    expect(compose.services.nats!.command).toContain('-js');
    const orchestrator = compose.services.orchestrator!;
    expect(orchestrator.build).toBe('.');
    expect(orchestrator.entrypoint).toBeUndefined(); // the image's: `orchestrator start`
    expect(Object.keys(orchestrator.depends_on ?? {}).sort()).toEqual(['nats', 'postgres', 'redis']);
    const agents = compose.services.agents!;
    expect(agents.image).toBe(orchestrator.image);
    expect(agents.entrypoint).toEqual(['node', 'build/examples/examples/agents.js']);
    expect(agents.healthcheck?.disable).toBe(true);
  });

  it('gives the orchestrator and the agents environment names of the configuration table, with values it accepts, pointing at the services', () => {
    for (const name of ['orchestrator', 'agents']) {
      const env = compose.services[name]!.environment ?? {};
      expect(Object.keys(env).filter((k) => !known(k)), `${name}: names outside the configuration table`).toEqual([]);
      const config = loadConfig(Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])));
      expect(config.nats.servers.map((s) => new URL(s).hostname)).toEqual(['nats']);
    }
    const env = compose.services.orchestrator!.environment!;
    expect(new URL(env.DATABASE_URL!).hostname).toBe('postgres');
    expect(new URL(env.REDIS_URL!).hostname).toBe('redis');
    expect(compose.services.agents!.environment!.NATS_SUBJECT_PREFIX).toBe(env.NATS_SUBJECT_PREFIX);
  });
});

describe('Dockerfile', () => {
  it('builds in stages and runs as an unprivileged user, with a HEALTHCHECK on /readyz and `orchestrator start` as entry', () => {
    const froms = instructions.filter((i) => i.keyword === 'FROM');
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f.args).toMatch(/^node:\$\{NODE_VERSION\}-slim AS \w+$/);
    expect(instructions.find((i) => i.keyword === 'ARG' && i.args.startsWith('NODE_VERSION='))?.args).toBe('NODE_VERSION=20');
    const user = inRuntime('USER');
    expect(user).toHaveLength(1);
    expect(user[0]!.args).not.toMatch(/^(root|0)(:|$)/);
    // Nothing runs as root in the runtime stage after the user is set, nor installs anything there.
    expect(inRuntime('RUN')).toEqual([]);
    const health = inRuntime('HEALTHCHECK');
    expect(health).toHaveLength(1);
    expect(health[0]!.args).toContain('/readyz');
    expect(health[0]!.args).toContain('HTTP_ADDR');
    expect(JSON.parse(inRuntime('ENTRYPOINT')[0]!.args)).toEqual(['node', '--max-semi-space-size=64', 'bin/orchestrator.js']);
    expect(JSON.parse(inRuntime('CMD')[0]!.args)).toEqual(['start']);
    // The server listens outside the container, where the HEALTHCHECK and the published port look.
    const env = inRuntime('ENV').map((i) => i.args).join(' ');
    expect(env).toMatch(/\bHTTP_ADDR=0\.0\.0\.0:8080\b/);
    expect(inRuntime('EXPOSE')[0]!.args).toBe('8080');
    const names = [...env.matchAll(/(\w+)=/g)].map((m) => m[1]!);
    expect(names.filter((n) => !known(n))).toEqual([]);
  });

  it('has a HEALTHCHECK command that exits 0 when /readyz answers 200 on HTTP_ADDR\'s port, 1 otherwise', async () => {
    const args = inRuntime('HEALTHCHECK')[0]!.args;
    const command = JSON.parse(args.slice(args.indexOf('CMD ') + 4)) as string[];
    expect(command.slice(0, 2)).toEqual(['node', '-e']);
    let ready = 200;
    const paths: string[] = [];
    const http = createHttpServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(req.url === '/readyz' ? ready : 404).end();
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    const port = (http.address() as AddressInfo).port;
    const check = (env: Record<string, string>) =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, command.slice(1), { env: { ...process.env, ...env }, stdio: 'ignore' });
        child.once('exit', (code) => resolve(code));
      });
    try {
      expect(await check({ HTTP_ADDR: `0.0.0.0:${port}` })).toBe(0);
      ready = 503;
      expect(await check({ HTTP_ADDR: `0.0.0.0:${port}` })).toBe(1);
      expect(paths).toEqual(['/readyz', '/readyz']);
      expect(await check({ HTTP_ADDR: `0.0.0.0:${await freePort()}` })).toBe(1); // nothing listens
    } finally {
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });

  it('installs only the production dependencies into the runtime image', () => {
    const copies = inRuntime('COPY');
    const fromStage = (path: string) => copies.find((c) => c.args.endsWith(` ${path}`))?.args.match(/--from=(\S+)/)?.[1];
    const depsStage = fromStage('node_modules');
    expect(depsStage).toBeDefined();
    const stageIndex = instructions.findIndex((i) => i.keyword === 'FROM' && i.args.endsWith(` AS ${depsStage}`));
    const runs = instructions.filter((i) => i.stage === instructions[stageIndex]!.stage && i.keyword === 'RUN');
    expect(runs.map((r) => r.args).join(' ')).toMatch(/npm ci --omit=dev --ignore-scripts/);
  });

  it('copies files that exist and that .dockerignore keeps in the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const sources = instructions
      .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--')).slice(0, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(ignored.filter((pattern) => source === pattern || source.startsWith(`${pattern}/`)), source).toEqual([]);
    }
    // What the runtime stage copies from the build stage is what its commands make.
    const build = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { outDir: string; rootDir: string } };
    expect(build.compilerOptions).toMatchObject({ outDir: 'dist', rootDir: 'src' });
    expect(read('bin/orchestrator.js')).toContain("import('../dist/cli/entry.js')");
    expect(existsSync(join(ROOT, 'src/cli/entry.ts'))).toBe(true);
    const examples = JSON.parse(read('tsconfig.examples.json')) as { compilerOptions: { outDir: string; rootDir: string }; include: string[] };
    expect(examples.compilerOptions).toMatchObject({ outDir: 'build/examples', rootDir: '.' });
    expect(examples.include).toEqual(['examples/agents.ts']);
    expect(inRuntime('COPY').map((c) => c.args)).toEqual(expect.arrayContaining(['--from=build /app/dist dist', '--from=build /app/build/examples build/examples', 'migrations migrations', 'bin bin']));
    expect(read('package.json')).toContain('"build": "tsc -p tsconfig.build.json && node scripts/copy-assets.mjs"');
  });

  it('runs code whose every package is a production dependency', () => {
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string> };
    const builtins = new Set(builtinModules);
    const files = [...listTs(join(ROOT, 'src')), join(ROOT, 'examples/agents.ts')];
    const missing: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const specifiers = [
        ...text.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\bfrom\s+)?['"]([^'"]+)['"]/gm),
        ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
      ].map((m) => m[1]!);
      for (const s of specifiers) {
        if (s.startsWith('.') || s.startsWith('node:') || builtins.has(s)) continue;
        const name = s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!;
        if (!(name in pkg.dependencies)) missing.push(`${relative(ROOT, file)}: ${s}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('compiles the agents example as the image does, and it runs under plain node (no tsx)', async () => {
    await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.examples.json', '--outDir', scratch], { cwd: ROOT, timeout: 120_000 });
    const entry = join(scratch, 'examples/agents.js');
    expect(existsSync(entry)).toBe(true);
    // No NATS on this port: the agents start, fail to connect and say so (the code loaded and ran).
    const port = await freePort();
    const child = spawn(process.execPath, [entry], { cwd: ROOT, env: { ...process.env, NATS_URL: `nats://127.0.0.1:${port}`, LOG_LEVEL: 'silent' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code, output).not.toBe(0);
    expect(output).toMatch(/cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+/);
    expect(output).not.toMatch(/ERR_MODULE_NOT_FOUND|Unknown file extension/);
  }, 150_000);
});

function listTs(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return listTs(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}
