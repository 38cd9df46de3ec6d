// The layering of src/, checked by dependency-cruiser (`npm run lint:deps`, part of `npm test`
// and so of CI, .ci/run). Every rule is an error. `lint:deps` cruises src/, and bin/, test/,
// bench/, examples/ and scripts/ too: the cycle and resolution rules hold there as well, the
// layer rules name src/ folders only. dependency-cruiser is pinned to 17.x: 18.x needs Node 22,
// and this package supports Node >= 20.10 (17.x: ^20.12 || ^22 || >= 24).
//
// The layers, from the inside out:
//
//   domain            values, zod schemas, task types: pure
//   machines          the XState machines: pure (xstate, domain)
//   ports             the interfaces the core needs (one per aggregate, and the one commit port
//                     that writes several together): domain and errors only
//   adapters          PostgreSQL, Redis, NATS, in-memory: ports, domain, errors (+ config, logger);
//                     each PostgreSQL store writes its aggregate's tables only, the commit adapter several
//   orchestrator, actors, pipeline, service, demo, agent, inspect: the application and the edge
//   metrics           the operator's metrics (prom-client): the Metrics port's implementation
//   http              the operator's HTTP server (Fastify): health, metrics; only the CLI starts it
//   cli               the command line: the outermost layer; nothing imports it
//
// Beside them, src/tracing: a leaf on the OpenTelemetry API alone, which the adapters and the
// use cases may import. Only src/cli (the start command) loads the OpenTelemetry SDK.
//
// Imports are resolved through tsconfig.json (NodeNext: `./x.js` is `./x.ts`), and type-only
// imports count (`tsPreCompilationDeps`): a cycle or a layer crossing made of `import type`
// lines is still one.

/** Node's built-in modules that do I/O (files, sockets, processes, threads, the host). */
const NODE_IO = '^(node:)?(fs|fs/promises|net|tls|dgram|dns|dns/promises|http|https|http2|child_process|cluster|worker_threads|os|readline|repl|inspector|v8|vm|process|tty|sqlite)$';

/**
 * Packages that do I/O: the drivers and servers' clients, and the logger. `pino` is not
 * allowed in domain and machines even as a type: neither uses it today, and a pure core gets
 * no logger (its callers log). The path is the resolved one, under node_modules.
 */
const IO_PACKAGES =
  '(^|/)node_modules/(@types/(pg|ws)|pg|pg-[^/]+|ioredis|@nats-io/[^/]+|ws|@electric-sql/pglite|pino|pino-[^/]+|bullmq|@statelyai/inspect)/';

/**
 * The OpenTelemetry packages other than the API: the SDK, exporters, resources, semantic
 * conventions and what they bring (core, context managers, OTLP transformers).
 */
const OTEL_SDK = '(^|/)node_modules/@opentelemetry/(?!api/)[^/]+/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles, type-only imports included (see tsPreCompilationDeps below).',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment:
        'Every import resolves. An import the cruiser cannot resolve would escape the other rules, ' +
        'so a resolution problem fails the check instead of passing it silently. The one exception ' +
        'is the build output: bin/orchestrator.js loads dist/, which exists only after `npm run build`.',
      from: {},
      to: { couldNotResolve: true, pathNot: '^\\.\\./dist/' },
    },
    {
      name: 'domain-is-pure',
      severity: 'error',
      comment:
        'src/domain imports only src/domain and src/errors.ts: no port, adapter, orchestrator, ' +
        'actor, service, CLI, demo, agent, config or logger.',
      from: { path: '^src/domain/' },
      to: { path: '^src/', pathNot: ['^src/domain/', '^src/errors\\.ts$'] },
    },
    {
      name: 'machines-are-pure',
      severity: 'error',
      comment:
        'src/machines imports only src/machines, src/domain and src/errors.ts. The real I/O is ' +
        'supplied to the machines at the edge (machine.provide), never imported by them.',
      from: { path: '^src/machines/' },
      to: { path: '^src/', pathNot: ['^src/(domain|machines)/', '^src/errors\\.ts$'] },
    },
    {
      name: 'domain-and-machines-no-io-modules',
      severity: 'error',
      comment:
        'src/domain and src/machines import no I/O module: no database, Redis, NATS or WebSocket ' +
        'client, no pino (not even as a type), no Node module for files, sockets or processes. ' +
        'Pure built-ins (node:crypto for ids, node:util...) and pure packages (zod, xstate) are fine.',
      from: { path: '^src/(domain|machines)/' },
      to: { path: [NODE_IO, IO_PACKAGES] },
    },
    {
      name: 'ports-import-domain-only',
      severity: 'error',
      comment:
        'src/ports import nothing but src/domain, src/errors.ts and other ports: no adapter, no ' +
        'application module, no package (a port is an interface designed from the core\'s needs).',
      from: { path: '^src/ports/' },
      to: { pathNot: ['^src/(ports|domain)/', '^src/errors\\.ts$'] },
    },
    {
      name: 'adapters-import-ports-domain-errors',
      severity: 'error',
      comment:
        'src/adapters import only src/ports, src/domain, src/errors.ts and other adapter modules ' +
        '(packages are fine: that is what adapters are for). Two leaf modules are allowed besides: ' +
        'src/config/ (the parsed OrchestratorConfig, which createBlackboard and connectNats take, ' +
        'and redactUrl for their log lines; it imports only zod, node:os, node:fs (TASK_TYPES_FILE), ' +
        'errors, domain and its settings) ' +
        'and src/logger.ts (the Logger type and silentLogger, injected into the NATS adapters; it ' +
        'imports only pino). Neither imports the core, so neither can bring a cycle or a layer in. ' +
        'And src/tracing/ (spans and trace context on the OpenTelemetry API: the NATS adapter\'s ' +
        'messaging spans and headers), a leaf as well (see tracing-is-a-leaf).',
      from: { path: '^src/adapters/' },
      to: {
        path: '^src/',
        pathNot: ['^src/(adapters|ports|domain|config|tracing)/', '^src/(errors|logger)\\.ts$'],
      },
    },
    {
      name: 'tracing-is-a-leaf',
      severity: 'error',
      comment:
        'src/tracing imports nothing of src/ but itself, and of the OpenTelemetry packages only the ' +
        'API: every layer that instruments (adapters, agent SDK, use cases) may import it without ' +
        'bringing a cycle, a layer or the SDK in.',
      from: { path: '^src/tracing/' },
      to: { path: ['^src/', OTEL_SDK], pathNot: '^src/tracing/' },
    },
    {
      name: 'only-the-start-command-loads-the-otel-sdk',
      severity: 'error',
      comment:
        'The library depends on @opentelemetry/api only: an application that embeds it brings its own ' +
        'SDK (or none: the API is a no-op then). The SDK, the exporters, resources and semantic ' +
        'conventions are loaded by src/cli alone (src/cli/tracing.ts, for `orchestrator start`). ' +
        'Tests, benchmarks and scripts may use them (an in-memory exporter).',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: OTEL_SDK },
    },
    {
      name: 'adapter-folders-independent',
      severity: 'error',
      comment:
        'One adapter folder (postgres, redis, nats, memory) does not import another: they share ' +
        'only the top-level src/adapters/*.ts modules. src/adapters/blackboards.ts, which is not in ' +
        'a folder, is where they are put together.',
      from: { path: '^src/adapters/([^/]+)/' },
      to: { path: '^src/adapters/[^/]+/', pathNot: '^src/adapters/$1/' },
    },
    {
      name: 'postgres-stores-stay-in-their-aggregate',
      severity: 'error',
      comment:
        'A store adapter of src/adapters/postgres (*-store.ts) writes only its own aggregate\'s tables: ' +
        'it imports no other store adapter and not the commit adapter (commit.ts). Writing several ' +
        'aggregates together is the commit adapter\'s alone, and it runs its own statements: it ' +
        'imports no store adapter either.',
      from: { path: '^src/adapters/postgres/([^/]+-store|commit)\\.ts$' },
      to: { path: '^src/adapters/postgres/([^/]+-store|commit)\\.ts$' },
    },
    {
      name: 'multi-aggregate-statements-only-in-the-commit-adapter',
      severity: 'error',
      comment:
        'The statements that write several aggregates in one statement or transaction (a transition ' +
        'with its budget effect and raised events: transition-sql.ts and its outcomes; an event\'s ' +
        'ingest: ingest-sql.ts) are run by the commit adapter (src/adapters/postgres/commit.ts) only.',
      from: {
        path: '^src/',
        pathNot: '^src/adapters/postgres/(commit|transition-sql|transition-outcomes|ingest-sql)\\.ts$',
      },
      to: { path: '^src/adapters/postgres/(transition-sql|transition-outcomes|ingest-sql)\\.ts$' },
    },
    {
      name: 'metrics-import-ports-domain-only',
      severity: 'error',
      comment:
        'src/metrics (the prom-client implementation of the Metrics port, and the scrape-time ' +
        'gauges) imports only src/ports, src/domain, src/errors.ts and src/logger.ts: the core ' +
        'reports to it through the port, never the other way round.',
      from: { path: '^src/metrics/' },
      to: { path: '^src/', pathNot: ['^src/(metrics|ports|domain)/', '^src/(errors|logger)\\.ts$'] },
    },
    {
      name: 'http-imports-ports-metrics-only',
      severity: 'error',
      comment:
        'src/http (the operator\'s HTTP server and its routes) imports only src/http, src/ports, ' +
        'src/metrics, src/domain, src/errors.ts and src/logger.ts: routes are given what they ' +
        'serve (checks, a registry), they do not reach into the core.',
      from: { path: '^src/http/' },
      to: { path: '^src/', pathNot: ['^src/(http|ports|metrics|domain)/', '^src/(errors|logger)\\.ts$'] },
    },
    {
      name: 'only-the-cli-starts-http',
      severity: 'error',
      comment: 'The HTTP server is started by `orchestrator start` (src/cli): no library module imports src/http.',
      from: { path: '^src/', pathNot: ['^src/(http|cli)/'] },
      to: { path: '^src/http/' },
    },
    {
      name: 'prom-client-only-in-metrics',
      severity: 'error',
      comment: 'prom-client is imported by src/metrics only: the rest reports through the Metrics port.',
      from: { path: '^src/', pathNot: '^src/metrics/' },
      to: { path: '(^|/)node_modules/prom-client/' },
    },
    {
      name: 'fastify-only-in-http',
      severity: 'error',
      comment: 'fastify is imported by src/http only (route sets are Fastify plugins there).',
      from: { path: '^src/', pathNot: '^src/http/' },
      to: { path: '(^|/)node_modules/(fastify|@fastify/[^/]+)/' },
    },
    {
      name: 'nothing-imports-the-cli',
      severity: 'error',
      comment:
        'src/cli is the outermost layer: only src/cli itself (and bin/, through dist/) imports it. ' +
        'Put what the CLI shares in a lower layer instead.',
      from: { pathNot: ['^src/cli/', '^bin/'] },
      to: { path: '^src/cli/' },
    },
  ],
  options: {
    // Also follow `import type` and other imports that vanish in the emitted JavaScript.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^dist/' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
